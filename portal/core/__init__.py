"""What every package uses and that depends on nothing else in portal: settings, errors, money in minor units,
signed tokens and customer keys, the Jinja environment, signed contact links, the GC pause for bulk loads.
"""
