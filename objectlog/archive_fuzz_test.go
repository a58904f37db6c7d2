package objectlog_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stratabroker/strata/objectlog"
)

// archiveFuzzSeeds are archive files of one workload (so one key fits them
// all) with one and with several row groups, and truncated copies.
func archiveFuzzSeeds(t testing.TB) (string, [][]byte) {
	batches := archiveWorkload(rand.New(rand.NewPCG(9, 9)), 0, 8)
	var key string
	var seeds [][]byte
	for _, opts := range []objectlog.ArchiveOptions{{}, {RowGroupRecords: 10}} {
		files := writeArchive(t, archivePart, opts, batches)
		if len(files) != 1 {
			t.Fatalf("%d files", len(files))
		}
		key = files[0].Info.Key
		data := files[0].Data
		seeds = append(seeds, data, data[:len(data)-9], data[:len(data)/2], data[4:])
	}
	return key, seeds
}

// FuzzReadArchive feeds arbitrary bytes to the archive reader as a file in
// a bucket: OpenArchive, every row group, ReadFrom and the batches rebuilt
// from what it returns. Every failure must be ErrCorrupt; nothing may panic
// or allocate without bound (the fuzzer's memory limit catches that).
func FuzzReadArchive(f *testing.F) {
	key, seeds := archiveFuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := t.Context()
		b := objectlog.NewMemBucket()
		if err := b.PutIfAbsent(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		// As a reader sees the bytes, then once more past the row group
		// checksums, which a mutation almost never keeps valid: the page
		// checks and the decoder must hold on their own.
		for _, open := range []func(context.Context, objectlog.BucketReader, string) (*objectlog.ArchiveReader, error){
			objectlog.OpenArchive, objectlog.OpenArchiveSkippingCRC,
		} {
			r, err := open(ctx, b, key)
			if err != nil {
				if !errors.Is(err, objectlog.ErrCorrupt) {
					t.Fatalf("OpenArchive: %v, want ErrCorrupt", err)
				}
				return
			}
			readArchiveFuzz(t, r)
		}
	})
}

func readArchiveFuzz(t *testing.T, r *objectlog.ArchiveReader) {
	ctx := t.Context()
	info := r.Info()
	for g := range info.RowGroups {
		recs, err := r.ReadRowGroup(ctx, g)
		if err != nil {
			if !errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("ReadRowGroup(%d): %v, want ErrCorrupt", g, err)
			}
			continue
		}
		if int64(len(recs)) != info.RowGroups[g].Records {
			t.Fatalf("row group %d: %d records, footer says %d", g, len(recs), info.RowGroups[g].Records)
		}
		chunk, err := objectlog.EncodeArchiveBatches(nil, recs, objectlog.CodecNone)
		if err != nil {
			t.Fatalf("records the reader accepted do not encode: %v", err)
		}
		if _, err := objectlog.DecodeChunk(chunk, -1); err != nil {
			t.Fatalf("rebuilt batches do not decode: %v", err)
		}
	}
	if _, err := r.ReadFrom(ctx, info.FirstOffset, 1<<10); err != nil && !errors.Is(err, objectlog.ErrCorrupt) {
		t.Fatalf("ReadFrom: %v, want ErrCorrupt", err)
	}
}
