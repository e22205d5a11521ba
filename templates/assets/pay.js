/* The pay form's running total: ticks, part amounts and the method's discount or fee. The webhook
   recomputes everything from its own records; this only shows the customer what to expect. Its words come
   from the form's data-msg-* attributes (translated in the template), never from this file. */
(function () {
  "use strict";
  var form = document.querySelector("form.pay-form");
  if (!form) { return; }
  var out = document.getElementById("pay-total");
  var lang = form.getAttribute("data-lang") || "en";
  // The customer's own number format is accepted as the webhook accepts it (portal.core.money.parse_typed_amount):
  // the plain dot form first, else the locale's grouping and decimal symbols. The words come from the page.
  var decimal = form.getAttribute("data-decimal") || ".";
  var group = form.getAttribute("data-group") || ",";

  function plain(text) {
    if (/^\d+(\.\d+)?$/.test(text)) { return text; }
    return text.split(group).join("").split(" ").join("").split("\u00a0").join("").split("\u202f").join("")
      .split(decimal).join(".");
  }

  function partOf(box, open, scale) {
    var field = document.getElementById(box.getAttribute("data-part") || "");
    var text = field ? plain(field.value.trim()) : "";
    if (!/^\d+(\.\d+)?$/.test(text)) { return open; }
    var parts = text.split(".");
    var frac = (parts[1] || "").slice(0, String(scale).length - 1);
    while (frac.length < String(scale).length - 1) { frac += "0"; }
    var minor = parseInt(parts[0], 10) * scale + (frac ? parseInt(frac, 10) : 0);
    return minor > 0 && minor <= open ? minor : open;
  }

  function update() {
    var method = form.querySelector("input[name=method]:checked");
    var bps = method ? parseInt(method.getAttribute("data-bps"), 10) || 0 : 0;
    var total = 0, currency = "", scale = 100, mixed = false;
    form.querySelectorAll("input[name=invoice]:checked").forEach(function (box) {
      var open = parseInt(box.getAttribute("data-open"), 10);
      scale = parseInt(box.getAttribute("data-scale"), 10);
      if (currency && currency !== box.getAttribute("data-currency")) { mixed = true; }
      currency = box.getAttribute("data-currency");
      total += partOf(box, open, scale);
    });
    // Credits first (the webhook leaves at least 50 minor units to pay), then the bank discount on the rest.
    var credit = 0;
    form.querySelectorAll("input[name=credit]:checked").forEach(function (box) {
      if (box.getAttribute("data-currency") === currency) { credit += parseInt(box.getAttribute("data-available"), 10); }
    });
    credit = Math.min(credit, Math.max(0, total - 50));
    total -= credit;
    if (bps < 0) { total -= Math.floor((total * -bps + 5000) / 10000); }
    if (bps > 0) { total += Math.floor((total * bps + 5000) / 10000); }
    if (mixed) { out.textContent = form.getAttribute("data-msg-mixed") || ""; return; }
    if (!currency) { out.textContent = form.getAttribute("data-msg-none") || ""; return; }
    out.textContent = new Intl.NumberFormat(lang, { style: "currency", currency: currency }).format(total / scale);
  }

  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
}());
