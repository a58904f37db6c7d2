package coordinator

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

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
//
// Besides go-redis's options, a redis URL may carry wait_replicas=N and
// wait_timeout=D (a Go duration, e.g. 500ms): Options.WaitReplicas and
// Options.WaitTimeout, used when opts leaves them zero. With WAIT on, the
// client's read timeout is raised to at least the wait timeout plus two
// seconds, since WAIT's answer travels in the commit's pipeline.
func Open(ctx context.Context, rawURL string, opts Options) (*Redis, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("%w: index URL %q has no scheme; use redis://, rediss://, redis+cluster:// or memory://", ErrInvalid, rawURL)
	}
	if err := opts.checkWait(); err != nil {
		return nil, err
	}
	if scheme != "memory" {
		stripped, err := takeWaitOptions(rawURL, &opts)
		if err != nil {
			return nil, fmt.Errorf("%w: index URL %s: %w", ErrInvalid, redactURL(rawURL), err)
		}
		rawURL = stripped
		_, rest, _ = strings.Cut(rawURL, "://")
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
		o.ReadTimeout = readTimeoutForWait(o.ReadTimeout, opts)
		client = redis.NewClient(o)
	case "redis+cluster", "rediss+cluster":
		o, err := parseClusterURL(strings.TrimSuffix(scheme, "+cluster"), rest)
		if err != nil {
			return nil, fmt.Errorf("%w: index URL: %w", ErrInvalid, err)
		}
		if o.Password == "" {
			o.Password = os.Getenv(PasswordEnv)
		}
		o.ReadTimeout = readTimeoutForWait(o.ReadTimeout, opts)
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

// takeWaitOptions removes wait_replicas and wait_timeout from the URL's
// query (go-redis refuses options it does not know) and applies them to the
// fields of opts that are still zero.
func takeWaitOptions(rawURL string, opts *Options) (string, error) {
	base, query, ok := strings.Cut(rawURL, "?")
	if !ok {
		return rawURL, nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", err
	}
	if v := q.Get("wait_replicas"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return "", fmt.Errorf("wait_replicas=%q: want a number of replicas, 0 or more", v)
		}
		if opts.WaitReplicas == 0 {
			opts.WaitReplicas = n
		}
	}
	if v := q.Get("wait_timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond {
			return "", fmt.Errorf("wait_timeout=%q: want a duration of at least 1ms, such as 500ms or 2s", v)
		}
		if opts.WaitTimeout == 0 {
			opts.WaitTimeout = d.Milliseconds()
		}
	}
	q.Del("wait_replicas")
	q.Del("wait_timeout")
	if len(q) == 0 {
		return base, nil
	}
	return base + "?" + q.Encode(), nil
}

// readTimeoutForWait returns a client read timeout (go-redis's convention:
// 0 = 3 s, negative = none) long enough for a commit pipeline that ends in
// WAIT.
func readTimeoutForWait(rt time.Duration, opts Options) time.Duration {
	if opts.WaitReplicas <= 0 || rt < 0 {
		return rt
	}
	if rt == 0 {
		rt = 3 * time.Second
	}
	need := time.Duration(opts.WaitTimeout)*time.Millisecond + 2*time.Second
	if opts.WaitTimeout <= 0 {
		need = defaultWaitTimeout*time.Millisecond + 2*time.Second
	}
	return max(rt, need)
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
