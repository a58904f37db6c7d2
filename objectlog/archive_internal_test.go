package objectlog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestCheckZstdFrames: the bound on what a page's zstd frames may
// decompress to, which stands between a page header and the decoder's
// allocation. Files reach it only past the row group checksum, so this
// tests it directly.
func TestCheckZstdFrames(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	small := enc.EncodeAll([]byte("tiny"), nil) // no content size under 256 bytes
	page := enc.EncodeAll(bytes.Repeat([]byte("strata archive "), 10000), nil)
	frameHeader := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00} // no content size, 1 KiB window
	block := func(typ, size uint32, last bool, payload ...byte) []byte {
		h := size<<3 | typ<<1
		if last {
			h |= 1
		}
		return append([]byte{byte(h), byte(h >> 8), byte(h >> 16)}, payload...)
	}
	var compressedBlocks []byte
	compressedBlocks = append(compressedBlocks, frameHeader...)
	for i := range 10 {
		compressedBlocks = append(compressedBlocks, block(2, 1, i == 9, 0)...)
	}
	rleBomb := append(append([]byte{}, frameHeader...), block(1, 1<<21-1, true, 'x')...)
	for _, tt := range []struct {
		name  string
		data  []byte
		limit int64
		ok    bool
	}{
		{"frame within the page", page, 150000, true},
		{"small frame without a content size", small, 4, true},
		{"two frames within the page", append(append([]byte{}, page...), page...), 300000, true},
		{"content size past the page", page, 1000, false},
		{"two frames past the page", append(append([]byte{}, page...), page...), 150000, false},
		{"ten compressed blocks without a content size", compressedBlocks, 1000, false},
		{"RLE block of 2 MiB", rleBomb, 1000, false},
		{"truncated block", page[:len(page)-1], 150000, false},
		{"not zstd", []byte("hello, world"), 1000, false},
	} {
		err := checkZstdFrames(tt.data, tt.limit, 0)
		if tt.ok && err != nil || !tt.ok && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
