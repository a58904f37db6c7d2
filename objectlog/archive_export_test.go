package objectlog

import "context"

// OpenArchiveSkippingCRC opens an archive file whose row group checksums
// are not checked, so that fuzzing reaches the page checks and the decoder
// behind them with bytes that no checksum would let through.
func OpenArchiveSkippingCRC(ctx context.Context, b BucketReader, key string) (*ArchiveReader, error) {
	r, err := OpenArchive(ctx, b, key)
	if r != nil {
		r.skipCRC = true
	}
	return r, err
}
