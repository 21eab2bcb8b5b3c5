"""Shared databases: least-privilege roles and views per integration, grant drift, schema changes.

An integration of ``type: shared_database`` declares, per consuming client,
the views it may use (columns with their data categories, a row filter, the
writable columns). :mod:`~interlock.databases.plan` turns that into a plan;
the dialect modules (:mod:`~interlock.databases.postgresql`,
:mod:`~interlock.databases.mariadb`) into statements, applied on the server,
and read the server's catalog back for :mod:`~interlock.databases.drift`;
:mod:`~interlock.databases.snapshot` records what the views rest on and
reports source changes that would break or widen them (docs/databases.md).
"""
