// Package archivesql holds only tests: it reads archive files written by
// objectlog with a real DuckDB (github.com/duckdb/duckdb-go, cgo with a
// bundled static library), the way users query the archive with SQL: files
// written to a filesystem bucket, and a copy fetched to disk of the archive
// an agent (imported by the tests only) compacted on MinIO. It is
// a package of its own so that only its test binary links DuckDB; building
// it costs about a minute the first time and the link a few seconds after.
package archivesql
