package coordinator

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// PasswordEnv names the environment variable that supplies the Redis
// password when the URL carries none.
const PasswordEnv = "STRATA_REDIS_PASSWORD"

// Open opens the index named by a URL:
//
//	redis://[user:password@]host:port[/db][?options]   one server (go-redis URL options)
//	rediss://...                                        the same over TLS
//	redis+cluster://[user:password@]host:port,host:port[?options]
//	rediss+cluster://...                                Redis Cluster, over TLS
//	memory:///path/to/dir                               embedded, persisted in dir
//	memory://                                           embedded, in memory only
//
// A password in the URL is accepted by convention, but URLs end up in logs
// and process listings: prefer $STRATA_REDIS_PASSWORD, used when the URL has
// none. Open checks the server answers before returning.
func Open(ctx context.Context, rawURL string, opts Options) (*Redis, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("%w: index URL %q has no scheme; use redis://, rediss://, redis+cluster:// or memory://", ErrInvalid, rawURL)
	}
	var client redis.UniversalClient
	switch scheme {
	case "memory":
		u, err := url.Parse(rawURL)
		if err != nil || u.Host != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("%w: index URL %q: use memory:// or memory:///absolute/dir", ErrInvalid, rawURL)
		}
		return OpenEmbedded(u.Path, opts)
	case "redis", "rediss":
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("%w: index URL: %w", ErrInvalid, err)
		}
		if o.Password == "" {
			o.Password = os.Getenv(PasswordEnv)
		}
		client = redis.NewClient(o)
	case "redis+cluster", "rediss+cluster":
		o, err := parseClusterURL(strings.TrimSuffix(scheme, "+cluster"), rest)
		if err != nil {
			return nil, fmt.Errorf("%w: index URL: %w", ErrInvalid, err)
		}
		if o.Password == "" {
			o.Password = os.Getenv(PasswordEnv)
		}
		client = redis.NewClusterClient(o)
	default:
		return nil, fmt.Errorf("%w: index URL scheme %q; use redis://, rediss://, redis+cluster:// or memory://", ErrInvalid, scheme)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		// Even a deadline here means "nothing answered", which callers
		// treat as retryable.
		return nil, fmt.Errorf("open index %s: %w: %w", redactURL(rawURL), ErrUnavailable, err)
	}
	r, err := NewRedis(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return r, nil
}

// parseClusterURL turns "user:pw@h1:p1,h2:p2/?opts" into go-redis's cluster
// URL form, "redis://user:pw@h1:p1?addr=h2:p2&opts", and parses that.
func parseClusterURL(scheme, rest string) (*redis.ClusterOptions, error) {
	hosts, query, _ := strings.Cut(rest, "?")
	userinfo := ""
	if i := strings.LastIndex(hosts, "@"); i >= 0 {
		userinfo, hosts = hosts[:i+1], hosts[i+1:]
	}
	hosts = strings.TrimSuffix(hosts, "/")
	if strings.Contains(hosts, "/") {
		return nil, fmt.Errorf("a cluster URL has no database path: %q", hosts)
	}
	addrs := strings.Split(hosts, ",")
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if a == "" {
			return nil, fmt.Errorf("empty host in %q", hosts)
		}
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	u := scheme + "://" + userinfo + addrs[0]
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return redis.ParseClusterURL(u)
}

// redactURL hides a password for error messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "index URL"
	}
	return u.Redacted()
}

// Options returns the options the index runs with (after defaults).
func (r *Redis) Options() Options { return r.opts }
