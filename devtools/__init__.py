"""Development tools shared by the tests and the benchmarks: throwaway PostgreSQL and PgBouncer
servers on loopback ports, and a stand-in for KooGallery's request signing. Never imported by the
product; bench/ and tests/ import it (bench/ never imports tests/)."""
