package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// header builds a request frame's bytes (without the size prefix).
func header(key, version int16, corr int32, clientID *string, flexible bool, body []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	if clientID == nil {
		b = binary.BigEndian.AppendUint16(b, 0xffff)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(*clientID)))
		b = append(b, *clientID...)
	}
	if flexible {
		b = append(b, 0)
	}
	return append(b, body...)
}

func sized(frame []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)
}

func TestParseHeader(t *testing.T) {
	t.Parallel()
	id := "client-1,zone=a"
	for _, tc := range []struct {
		name    string
		frame   []byte
		want    requestHeader
		rest    int
		wantErr error
	}{
		{"v1 with client id", header(3, 12, 99, &id, false, []byte{1, 2}), requestHeader{3, 12, 99, &id}, 2, nil},
		{"null client id", header(18, 0, -5, nil, false, nil), requestHeader{18, 0, -5, nil}, 0, nil},
		{"short", []byte{0, 3, 0, 1, 0, 0}, requestHeader{}, 0, errFrameTooShort},
		{"client id past the end", append(header(3, 1, 1, nil, false, nil)[:8], 0, 50, 'a'), requestHeader{}, 0, errMalformed},
		{"negative client id length", append(header(3, 1, 1, nil, false, nil)[:8], 0x80, 0), requestHeader{}, 0, errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, rest, err := parseHeader(tc.frame)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if h.key != tc.want.key || h.version != tc.want.version || h.correlationID != tc.want.correlationID ||
				(h.clientID == nil) != (tc.want.clientID == nil) || (h.clientID != nil && *h.clientID != *tc.want.clientID) {
				t.Fatalf("header %+v, want %+v", h, tc.want)
			}
			if len(rest) != tc.rest {
				t.Fatalf("%d bytes after the header, want %d", len(rest), tc.rest)
			}
		})
	}
}

func TestDecodeRequestFlexibleHeaderTags(t *testing.T) {
	t.Parallel()
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("orders")}}
	body := req.AppendTo(nil)
	id := "c"
	// Header v2 with one unknown tagged field (tag 5, 3 bytes): skipped.
	f := header(3, 12, 1, &id, false, nil)
	f = append(f, 1, 5, 3, 'x', 'y', 'z')
	f = append(f, body...)
	d, err := decodeRequest(f)
	if err != nil || d.unsupported {
		t.Fatalf("decode: %v unsupported=%v", err, d.unsupported)
	}
	got := d.req.(*kmsg.MetadataRequest)
	if len(got.Topics) != 1 || *got.Topics[0].Topic != "orders" {
		t.Fatalf("decoded %+v", got)
	}
	// A tagged field whose size runs past the frame is malformed.
	bad := header(3, 12, 1, &id, false, []byte{1, 5, 100, 'x'})
	if _, err := decodeRequest(bad); !errors.Is(err, errMalformed) {
		t.Fatalf("tag past the end: %v, want errMalformed", err)
	}
}

func TestDecodeRequestUnsupported(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key, version int16
	}{
		{int16(kmsg.Produce), 12},     // above the range
		{int16(kmsg.Fetch), 3},        // below it
		{int16(kmsg.EndTxn), 4},       // KIP-890 part 2: not served
		{int16(kmsg.ApiVersions), 99}, // from the future
		{int16(kmsg.ListOffsets), 0},  // v0 not served
		{9999, 0},                     // unknown to Kafka
	} {
		d, err := decodeRequest(header(tc.key, tc.version, 1, nil, false, nil))
		if err != nil || !d.unsupported || d.req != nil {
			t.Errorf("key %d v%d: err %v unsupported %v", tc.key, tc.version, err, d.unsupported)
		}
	}
	if r := unsupportedResponse(requestHeader{key: 9999}, nil); r != nil {
		t.Errorf("a response for an unknown key: %T", r)
	}
	if r := unsupportedResponse(requestHeader{key: int16(kmsg.Metadata), version: 99}, nil); r != nil {
		t.Errorf("a response for a version kmsg cannot encode: %T", r)
	}
	r := unsupportedResponse(requestHeader{key: int16(kmsg.ApiVersions), version: 7}, nil).(*kmsg.ApiVersionsResponse)
	if r.Version != 0 || r.ErrorCode != 35 || len(r.ApiKeys) != len(apis) {
		t.Errorf("ApiVersions v7 answer: v%d error %d %d keys", r.Version, r.ErrorCode, len(r.ApiKeys))
	}
}

func TestReadFrameChecksSizeBeforeAllocating(t *testing.T) {
	t.Parallel()
	for _, size := range []uint32{1025, 1 << 31, 0xffffffff} {
		// Only the size prefix: reading more would block or fail with EOF;
		// a size check that comes first answers errFrameTooLarge.
		_, err := readFrame(bytes.NewReader(binary.BigEndian.AppendUint32(nil, size)), 1024)
		if !errors.Is(err, errFrameTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("size %d bytes", int32(size))) {
			t.Errorf("size %d: %v, want errFrameTooLarge naming the size as Kafka reads it (%d)", size, err, int32(size))
		}
	}
	if _, err := readFrame(bytes.NewReader(sized([]byte{1, 2, 3})), 1024); !errors.Is(err, errFrameTooShort) {
		t.Errorf("3-byte frame: %v", err)
	}
	if _, err := readFrame(bytes.NewReader(append(binary.BigEndian.AppendUint32(nil, 100), 1, 2, 3, 4, 5)), 1024); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v", err)
	}
	f := header(18, 0, 1, nil, false, nil)
	got, err := readFrame(bytes.NewReader(sized(f)), 1024)
	if err != nil || !bytes.Equal(got, f) {
		t.Errorf("good frame: %x %v", got, err)
	}
}

func TestAppendResponseHeaders(t *testing.T) {
	t.Parallel()
	// Flexible response (Metadata v12): header v1, one empty tag byte.
	md := kmsg.NewPtrMetadataResponse()
	md.SetVersion(12)
	b := appendResponse(nil, 77, md)
	if int(binary.BigEndian.Uint32(b)) != len(b)-4 || binary.BigEndian.Uint32(b[4:]) != 77 || b[8] != 0 {
		t.Fatalf("flexible response frame %x", b[:9])
	}
	if !bytes.Equal(b[9:], md.AppendTo(nil)) {
		t.Fatal("body differs")
	}
	// ApiVersions v3 is flexible, yet its header stays v0 (KIP-511).
	av := kmsg.NewPtrApiVersionsResponse()
	av.SetVersion(3)
	b = appendResponse(nil, 5, av)
	if !bytes.Equal(b[8:], av.AppendTo(nil)) {
		t.Fatal("ApiVersions v3 response header is not v0")
	}
}

// FuzzDecodeRequest feeds arbitrary bytes to the frame reader and the request
// decoder, as a client on the network could: they must never panic, and no
// length field may make them allocate much more than the bytes they were given.
func FuzzDecodeRequest(f *testing.F) {
	id := "fuzz"
	for _, req := range []kmsg.Request{
		kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrMetadataRequest(), kmsg.NewPtrProduceRequest(),
		kmsg.NewPtrFetchRequest(), kmsg.NewPtrCreateTopicsRequest(), kmsg.NewPtrDescribeConfigsRequest(),
		kmsg.NewPtrFindCoordinatorRequest(),
	} {
		a, ok := apis[req.Key()]
		v := a.max
		if !ok {
			v = req.MaxVersion()
		}
		req.SetVersion(v)
		f.Add(sized(header(req.Key(), v, 1, &id, req.IsFlexible(), req.AppendTo(nil))))
	}
	f.Add(sized(header(int16(kmsg.ApiVersions), 99, 1, nil, true, []byte{0})))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	const maxFrame = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		frame, err := readFrame(bytes.NewReader(data), maxFrame)
		if err == nil && len(frame) > maxFrame {
			t.Fatalf("frame of %d bytes over the %d limit", len(frame), maxFrame)
		}
		for _, in := range [][]byte{frame, data} {
			d, err := decodeRequest(in)
			if err != nil {
				continue
			}
			if d.unsupported {
				if r := unsupportedResponse(d.header, d.body); r != nil {
					appendResponse(nil, d.header.correlationID, r)
				}
			}
		}
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20+uint64(512*len(data)) {
			t.Fatalf("decoding %d bytes allocated %d bytes", len(data), grew)
		}
	})
}
