"""Publishing the built site: one storage interface chosen once (targets.py: Target, FolderTarget,
choose_target; s3.py: S3Target), what to upload and delete (plan.py), the manifest, documents' downloads, and the
sharded build's publish and reconcile (shards.py). docs/publish.md.
"""
