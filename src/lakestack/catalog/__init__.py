"""The metastore: securables and their names, principals, grants, and the audit log."""
