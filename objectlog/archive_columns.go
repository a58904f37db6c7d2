package objectlog

// Decoding a row group column by column. parquet-go's row reader
// (GenericRowGroupReader) reads each row's values and rebuilds the row
// struct through reflection; for archive reads that was three quarters of
// a catch-up fetch's time (issue 10). The archive's schema is fixed, so
// each leaf column is read here straight into the rows' fields: the same
// values, in the same rows, with keys and values copied into one buffer
// per column rather than one allocation each.

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// archiveColumnBatch is how many values a column read takes at once.
const archiveColumnBatch = 1024

// readArchiveColumns fills rows, len(rows) being the row group's row count,
// from the row group's column chunks. Each chunk must hold exactly one value
// per row (headers: one row per run starting at repetition level 0); any
// mismatch is ErrCorrupt.
func readArchiveColumns(schema *parquet.Schema, g parquet.RowGroup, leaves []archiveLeaf, rows []archiveRow, at int64) error {
	chunks := g.ColumnChunks()
	if len(chunks) != len(leaves) {
		return archiveCorrupt(at, "%d column chunks, want %d", len(chunks), len(leaves))
	}
	buf := make([]parquet.Value, archiveColumnBatch)
	for j, leaf := range leaves {
		col, ok := schema.Lookup(leaf.path...)
		if !ok {
			return archiveCorrupt(at, "column %v not in the schema", leaf.path)
		}
		name := strings.Join(leaf.path, ".")
		c := columnFill{rows: rows, maxDef: col.MaxDefinitionLevel, at: at, name: name}
		set, err := c.setter(name)
		if err != nil {
			return err
		}
		if err := c.read(chunks[j], buf, set); err != nil {
			return err
		}
		if err := c.done(); err != nil {
			return err
		}
	}
	return nil
}

// columnFill reads one leaf column into rows.
type columnFill struct {
	rows   []archiveRow
	maxDef int
	at     int64
	name   string
	// row is the row the next value belongs to; for the headers' columns
	// the row of the last value read, and entry the header entry in it.
	row, entry int
	started    bool // a headers column has read a value
	// slab holds the column's byte values, copied from the pages.
	slab []byte
	// ptrs holds the *[]byte targets of optional byte columns: for key and
	// value one array for the column, indexed by row; for header values
	// arrays filled in turn.
	ptrs []([]byte)
	// lastKey is the header key read last: keys repeat, and a record's
	// header keys share one string each.
	lastKey string
}

func (c *columnFill) corrupt(format string, args ...any) error {
	return archiveCorrupt(c.at, "column %s: %s", c.name, fmt.Sprintf(format, args...))
}

// bytes copies b into the column's slab and returns the copy, capped.
func (c *columnFill) bytes(b []byte) []byte {
	// Never nil, not even for an empty value: an empty key is not null.
	if c.slab == nil || cap(c.slab)-len(c.slab) < len(b) {
		c.slab = make([]byte, 0, max(64<<10, 2*len(b)))
	}
	start := len(c.slab)
	c.slab = append(c.slab, b...)
	return c.slab[start:len(c.slab):len(c.slab)]
}

// optional returns a pointer to a copy of v's bytes, or nil for a null.
func (c *columnFill) optional(v parquet.Value) *[]byte {
	if v.DefinitionLevel() < c.maxDef {
		return nil
	}
	if c.ptrs == nil {
		c.ptrs = make([]([]byte), len(c.rows))
	}
	p := &c.ptrs[c.row]
	*p = c.bytes(v.ByteArray())
	return p
}

// setter returns what stores a value of the column into its row, by the
// column's name in the archive schema (archiveRow's tags).
func (c *columnFill) setter(name string) (func(v parquet.Value) error, error) {
	row := func(f func(r *archiveRow, v parquet.Value)) func(v parquet.Value) error {
		return func(v parquet.Value) error {
			if c.row >= len(c.rows) {
				return c.corrupt("more values than the row group's %d rows", len(c.rows))
			}
			if v.RepetitionLevel() != 0 {
				return c.corrupt("repetition level %d in a column that is not repeated", v.RepetitionLevel())
			}
			f(&c.rows[c.row], v)
			c.row++
			return nil
		}
	}
	switch name {
	case "offset":
		return row(func(r *archiveRow, v parquet.Value) { r.Offset = v.Int64() }), nil
	case "timestamp":
		return row(func(r *archiveRow, v parquet.Value) { r.Timestamp = v.Int64() }), nil
	case "key":
		return row(func(r *archiveRow, v parquet.Value) { r.Key = c.optional(v) }), nil
	case "value":
		return row(func(r *archiveRow, v parquet.Value) { r.Value = c.optional(v) }), nil
	case "batch_base_offset":
		return row(func(r *archiveRow, v parquet.Value) { r.BatchBaseOffset = v.Int64() }), nil
	case "batch_last_offset_delta":
		return row(func(r *archiveRow, v parquet.Value) { r.BatchLastOffsetDelta = v.Int32() }), nil
	case "batch_first_timestamp":
		return row(func(r *archiveRow, v parquet.Value) { r.BatchFirstTimestamp = v.Int64() }), nil
	case "batch_max_timestamp":
		return row(func(r *archiveRow, v parquet.Value) { r.BatchMaxTimestamp = v.Int64() }), nil
	case "partition_leader_epoch":
		return row(func(r *archiveRow, v parquet.Value) { r.PartitionLeaderEpoch = v.Int32() }), nil
	case "producer_id":
		return row(func(r *archiveRow, v parquet.Value) { r.ProducerID = v.Int64() }), nil
	case "producer_epoch":
		return row(func(r *archiveRow, v parquet.Value) { r.ProducerEpoch = int16(v.Int32()) }), nil
	case "base_sequence":
		return row(func(r *archiveRow, v parquet.Value) { r.BaseSequence = v.Int32() }), nil
	case "timestamp_type":
		var last string
		return row(func(r *archiveRow, v parquet.Value) {
			if b := v.ByteArray(); string(b) != last {
				last = string(b)
			}
			r.TimestampType = last
		}), nil
	case "transactional":
		return row(func(r *archiveRow, v parquet.Value) { r.Transactional = v.Boolean() }), nil
	case "headers.list.element.key":
		return c.headerKey, nil
	case "headers.list.element.value":
		return c.headerValue, nil
	}
	return nil, c.corrupt("not an archive column")
}

// headerKey reads the key column of the headers list: a value at
// repetition level 0 starts the next row; one whose definition level is
// the column's maximum is a header entry (the key is required), a lower one
// an empty list.
func (c *columnFill) headerKey(v parquet.Value) error {
	if !c.nextHeaderRow(v) {
		return c.corrupt("more rows than the row group's %d", len(c.rows))
	}
	if v.DefinitionLevel() < c.maxDef {
		if v.RepetitionLevel() != 0 {
			return c.corrupt("empty header list inside a list")
		}
		return nil
	}
	b := v.ByteArray()
	if string(b) != c.lastKey {
		c.lastKey = string(b)
	}
	r := &c.rows[c.row]
	r.Headers = append(r.Headers, archiveHeader{Key: c.lastKey})
	return nil
}

// headerValue reads the value column of the headers list into the entries
// headerKey made: maximum definition level a value, one less a null value,
// less still an empty list; the two columns must agree entry for entry.
func (c *columnFill) headerValue(v parquet.Value) error {
	if !c.nextHeaderRow(v) {
		return c.corrupt("more rows than the row group's %d", len(c.rows))
	}
	hs := c.rows[c.row].Headers
	if v.DefinitionLevel() < c.maxDef-1 {
		if len(hs) != 0 || v.RepetitionLevel() != 0 {
			return c.corrupt("row %d: no header where the key column has %d", c.row, len(hs))
		}
		return nil
	}
	if c.entry >= len(hs) {
		return c.corrupt("row %d: more header values than the key column's %d", c.row, len(hs))
	}
	if v.DefinitionLevel() == c.maxDef {
		// The targets in arrays of many, not one allocation each; a full
		// array is left as it is, so the pointers into it stay valid.
		if len(c.ptrs) == cap(c.ptrs) {
			c.ptrs = make([]([]byte), 0, 1024)
		}
		c.ptrs = append(c.ptrs, c.bytes(v.ByteArray()))
		hs[c.entry].Value = &c.ptrs[len(c.ptrs)-1]
	}
	c.entry++
	return nil
}

// nextHeaderRow moves to the next row when v starts one (repetition level
// 0), checking the row before got all its header values. It reports false
// when rows run out.
func (c *columnFill) nextHeaderRow(v parquet.Value) bool {
	if v.RepetitionLevel() == 0 {
		if c.started {
			c.row++
		}
		c.started = true
		c.entry = 0
	}
	return c.started && c.row < len(c.rows)
}

// read feeds every value of the chunk to set.
func (c *columnFill) read(chunk parquet.ColumnChunk, buf []parquet.Value, set func(parquet.Value) error) error {
	pages := chunk.Pages()
	defer pages.Close()
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.corrupt("reading a page: %v", err)
		}
		vr := p.Values()
		for {
			n, err := vr.ReadValues(buf)
			for _, v := range buf[:n] {
				if serr := set(v); serr != nil {
					return serr
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return c.corrupt("reading values: %v", err)
			}
			if n == 0 {
				return c.corrupt("a page returned no values and no end")
			}
		}
	}
}

// done checks that the column had a value (or a header list) for every row.
func (c *columnFill) done() error {
	got := c.row
	if c.started {
		got++
	}
	if got != len(c.rows) {
		return c.corrupt("values for %d of the row group's %d rows", got, len(c.rows))
	}
	return nil
}
