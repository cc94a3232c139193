"""The ``data`` options a job reads (``sources``: embedded, file, profet) and the generated default's cache
(``embedded``)."""
