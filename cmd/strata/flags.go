package main

// Flag value types shared by the commands.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// keyValue is one k=v argument.
type keyValue struct{ key, value string }

func parseKeyValue(s string) (keyValue, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return keyValue{}, fmt.Errorf("want key=value, got %q", s)
	}
	return keyValue{k, v}, nil
}

// keyValueList collects repeated k=v flags in order (--header k=v ...).
type keyValueList []keyValue

func (l *keyValueList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(*l))
	for i, kv := range *l {
		parts[i] = kv.key + "=" + kv.value
	}
	return strings.Join(parts, ",")
}

func (l *keyValueList) Set(s string) error {
	kv, err := parseKeyValue(s)
	if err != nil {
		return err
	}
	*l = append(*l, kv)
	return nil
}

// configMap collects repeated --config k=v flags; a key given twice keeps
// the last value, as a later flag overrides an earlier one.
type configMap map[string]string

func (m configMap) String() string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (m configMap) Set(s string) error {
	kv, err := parseKeyValue(s)
	if err != nil {
		return err
	}
	// The API reads an empty value as "back to the default"; typed, it is
	// more often a mistake (an unset shell variable), so resetting has its
	// own flag, as in Kafka's kafka-configs --delete-config.
	if kv.value == "" {
		return fmt.Errorf("%s has an empty value; to reset it to its default use strata topic alter --delete-config %s", s, kv.key)
	}
	m[kv.key] = kv.value
	return nil
}

// configKeys collects repeated --delete-config KEY flags.
type configKeys []string

func (l *configKeys) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *configKeys) Set(s string) error {
	if s == "" || strings.Contains(s, "=") {
		return fmt.Errorf("want a config key (e.g. retention.ms), got %q", s)
	}
	*l = append(*l, s)
	return nil
}

// partitionList collects repeated --partition N flags.
type partitionList []int32

func (l *partitionList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(*l))
	for i, p := range *l {
		parts[i] = strconv.Itoa(int(p))
	}
	return strings.Join(parts, ",")
}

func (l *partitionList) Set(s string) error {
	p, err := parsePartition(s)
	if err != nil {
		return err
	}
	*l = append(*l, p)
	return nil
}

// optionalPartition is a --partition that may be absent.
type optionalPartition struct {
	p   int32
	set bool
}

func (o *optionalPartition) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.Itoa(int(o.p))
}

func (o *optionalPartition) Set(s string) error {
	p, err := parsePartition(s)
	if err != nil {
		return err
	}
	o.p, o.set = p, true
	return nil
}

func parsePartition(s string) (int32, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a partition number (0, 1, ...), got %q", s)
	}
	return int32(n), nil
}

// byteSize is a size in bytes written as 1048576, 512KiB, 1MiB, 1MB, 2GiB.
type byteSize int64

func (b *byteSize) String() string { return formatBytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first, so "MiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
	{"b", 1},
}

func parseBytes(s string) (int64, error) {
	lower := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(lower, u.suffix) {
			lower, mult = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, errors.New("want a size such as 1048576, 512KiB or 1MiB")
	}
	return n * mult, nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

// oneOf checks a flag's value against its allowed values.
func oneOf(cmd, flagName, value string, allowed ...string) error {
	for _, a := range allowed {
		if value == a {
			return nil
		}
	}
	return usagef(cmd, "--%s %q: want %s", flagName, value, strings.Join(allowed, " or "))
}
