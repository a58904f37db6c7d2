package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions: key 18, versions 0-4.
//
// The first request of every client: it lists the APIs in the apis table with
// their version ranges, nothing else (no group or transaction APIs until they
// are served). Behaviour and version notes:
//
//   - The response header is always v0 (no tagged fields), even for the
//     flexible versions 3+ (KIP-511), so that a client that guessed too high a
//     version can still read the answer.
//   - A version above 4 is answered at v0 with UNSUPPORTED_VERSION and the
//     list, and the client retries with a version from it (request.go,
//     unsupportedResponse).
//   - v3+ requests carry the client's software name and version; Kafka
//     rejects malformed ones with INVALID_REQUEST, and so do we.
//   - No features (KIP-584) are advertised.

func (s *Server) handleApiVersions(_ context.Context, _ *clientConn, req *kmsg.ApiVersionsRequest) func() (kmsg.Response, error) {
	resp := apiVersionsResponse(req.Version)
	if req.Version >= 3 && (!validSoftware(req.ClientSoftwareName) || !validSoftware(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
	}
	return ready(resp)
}

// apiVersionsResponse lists the apis table at the given response version.
func apiVersionsResponse(version int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	keys := make([]int16, 0, len(apis))
	for k := range apis {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := apis[k]
		v := kmsg.NewApiVersionsResponseApiKey()
		v.ApiKey, v.MinVersion, v.MaxVersion = k, a.min, a.max
		resp.ApiKeys = append(resp.ApiKeys, v)
	}
	return resp
}

// validSoftware is Kafka's check of ClientSoftwareName and Version (KIP-511):
// non-empty, letters, digits, '.', '-', starting and ending with a letter or
// digit.
func validSoftware(s string) bool {
	if s == "" {
		return false
	}
	alnum := func(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') }
	if !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}
