package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A Kafka request frame is a 4-byte big-endian size and that many bytes: the
// request header, read here by hand, then the body, read by kmsg.
//
//	header v1: api_key int16, api_version int16, correlation_id int32,
//	           client_id nullable string (int16 length)
//	header v2: header v1, then tagged fields (flexible versions, KIP-482)
//
// A response frame is a size, the response header (v0: correlation_id; v1:
// correlation_id and an empty tagged-field section, for flexible versions)
// and the body. ApiVersions answers always use header v0, even at flexible
// versions, so that a client can read the answer before it knows which
// versions the broker speaks (KIP-511).

// minHeaderBytes is the smallest request header: key, version, correlation id
// and a null client id.
const minHeaderBytes = 2 + 2 + 4 + 2

var (
	errFrameTooLarge = errors.New("request frame over the maximum request size")
	errFrameTooShort = errors.New("request frame shorter than a request header")
	errMalformed     = errors.New("malformed request")
)

// requestHeader is a decoded request header.
type requestHeader struct {
	key           int16
	version       int16
	correlationID int32
	clientID      *string
}

// readFrame reads one size-prefixed frame, checking the size against max
// before it allocates anything.
func readFrame(r io.Reader, max int32) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > max {
		// Signed, as Kafka reads it (its "Invalid receive (size = -1)").
		return nil, fmt.Errorf("%w: size %d bytes, limit %d", errFrameTooLarge, n, max)
	}
	if n < minHeaderBytes {
		return nil, fmt.Errorf("%w: %d bytes, need %d", errFrameTooShort, n, minHeaderBytes)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(r, frame); err != nil {
		return nil, err
	}
	return frame, nil
}

// parseHeader reads the fixed part of the request header (v1) and returns
// the header and the bytes after it.
func parseHeader(frame []byte) (requestHeader, []byte, error) {
	var h requestHeader
	if len(frame) < minHeaderBytes {
		return h, nil, fmt.Errorf("%w: %d bytes, need %d", errFrameTooShort, len(frame), minHeaderBytes)
	}
	h.key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.correlationID = int32(binary.BigEndian.Uint32(frame[4:]))
	n := int16(binary.BigEndian.Uint16(frame[8:]))
	rest := frame[10:]
	switch {
	case n == -1:
	case n < 0 || int(n) > len(rest):
		return h, nil, fmt.Errorf("%w: client id length %d with %d bytes left", errMalformed, n, len(rest))
	default:
		s := string(rest[:n])
		h.clientID = &s
		rest = rest[n:]
	}
	return h, rest, nil
}

// skipTags skips a tagged-field section (KIP-482): a count, then per field a
// tag, a size and that many bytes. Unknown header tags are ignored, as Kafka
// does.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return nil, fmt.Errorf("%w: bad tagged field count", errMalformed)
	}
	b = b[n:]
	for i := uint64(0); i < count; i++ {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, fmt.Errorf("%w: bad tag", errMalformed)
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: tagged field size over the frame", errMalformed)
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// decodedRequest is a frame taken apart. req is nil when the API or version
// is not served (unsupported is then set) and for frames that failed to decode.
type decodedRequest struct {
	header      requestHeader
	req         kmsg.Request
	unsupported bool
	body        []byte // after the fixed header; for unsupported requests only
}

// decodeRequest takes one frame apart: header by hand, body by kmsg, for the
// APIs and versions in the apis table. An API or version not served is not an
// error: it comes back with unsupported set, to be answered with
// UNSUPPORTED_VERSION. A malformed frame is an error: the connection is closed,
// as Kafka closes it, because the stream can no longer be trusted.
func decodeRequest(frame []byte) (decodedRequest, error) {
	h, rest, err := parseHeader(frame)
	d := decodedRequest{header: h}
	if err != nil {
		return d, err
	}
	a, ok := apis[h.key]
	if !ok || h.version < a.min || h.version > a.max {
		d.unsupported, d.body = true, rest
		return d, nil
	}
	req := kmsg.RequestForKey(h.key)
	if req == nil { // every key in apis is one kmsg knows; guard anyway
		d.unsupported = true
		return d, nil
	}
	req.SetVersion(h.version)
	if req.IsFlexible() {
		if rest, err = skipTags(rest); err != nil {
			return d, err
		}
	}
	if err := req.ReadFrom(rest); err != nil {
		return d, fmt.Errorf("%w: %s v%d: %v", errMalformed, kmsg.NameForKey(h.key), h.version, err)
	}
	d.req = req
	return d, nil
}

// appendResponse appends one whole response frame (size, header, body) to dst.
func appendResponse(dst []byte, correlationID int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		dst = append(dst, 0) // no tagged fields in the response header
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// unsupportedResponse is the answer to an API or version not served: the
// API's response at the version asked for, with its top-level error code set to
// UNSUPPORTED_VERSION. ApiVersions is answered at v0 with the error and the
// versions served, so the client can pick one (KIP-511). It returns nil when
// kmsg cannot encode a response of that key and version: there is then no
// answer the client could read, and the connection is closed with a log line.
//
// FindCoordinator v4+ has no top-level error code: each key asked gets
// UNSUPPORTED_VERSION (group clients send it first, so this is the error
// they see until groups are served).
func unsupportedResponse(h requestHeader, body []byte) kmsg.Response {
	if h.key == int16(kmsg.ApiVersions) {
		resp := apiVersionsResponse(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp
	}
	resp := kmsg.ResponseForKey(h.key)
	if resp == nil || h.version < 0 || h.version > kmsg.RequestForKey(h.key).MaxVersion() {
		return nil
	}
	resp.SetVersion(h.version)
	if f := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 {
		f.SetInt(int64(kerr.UnsupportedVersion.Code))
	}
	if fc, ok := resp.(*kmsg.FindCoordinatorResponse); ok && h.version >= 4 {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.SetVersion(h.version)
		if rest, err := skipTags(body); err == nil && req.ReadFrom(rest) == nil {
			for _, key := range req.CoordinatorKeys {
				c := kmsg.NewFindCoordinatorResponseCoordinator()
				c.Key, c.NodeID, c.Port = key, -1, -1
				c.ErrorCode = kerr.UnsupportedVersion.Code
				c.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("FindCoordinator v%d is not served by this broker; ApiVersions lists the versions it serves", h.version))
				fc.Coordinators = append(fc.Coordinators, c)
			}
		}
	}
	return resp
}
