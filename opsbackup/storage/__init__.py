"""Object storage behind one interface (:class:`~opsbackup.storage.base.ObjectStore`).

Every backend passes the same conformance suite (``tests/storage/conformance.py``).
"""
