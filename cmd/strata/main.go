// Command strata is Strata's one binary: the agent (`strata agent`), a
// one-process development broker (`strata dev`) and the clients that talk to
// any agent over the public API (`strata topic`, `strata produce`,
// `strata consume`).
//
// Every command is a function of (ctx, args, stdin, stdout, stderr) behind
// run, so tests drive the real commands in process. Errors reach the user as
// one line on stderr and exit status 1; `--help` prints to stdout and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal cancels ctx (a graceful stop: the agent flushes what
	// it holds, consume --follow ends); a second one means "now".
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		<-signals
		fmt.Fprintln(os.Stderr, "strata: second signal, exiting at once")
		os.Exit(1)
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli carries a command's standard streams.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// subscribed, if set, is called once consume's stream has its start
	// positions fixed: records produced after it are seen even from
	// latest. Tests use it; the command line has no need.
	subscribed func()
}

// command is one subcommand (or group of them, like topic).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

func commands() []command {
	return []command{
		{"agent", "run an agent, the production server", runAgent},
		{"dev", "run a one-process development broker with local storage", runDev},
		{"topic", "create, list, describe, alter and delete topics", runTopic},
		{"produce", "write records to a topic, one per input line", runProduce},
		{"consume", "read records from a topic", runConsume},
		{"bench", "measure throughput and latency of an agent, its store and index", runBench},
		{"group", "list, describe, reset and delete consumer groups", runGroup},
	}
}

const mainUsage = `Strata is a Kafka-style streaming broker on object storage.

Usage:
  strata <command> [arguments]

Commands:
%s  help       show help for a command

Run 'strata <command> --help' for a command's flags.

Quick start:
  strata dev                                   # terminal 1
  strata topic create demo --partitions 3      # terminal 2
  echo hello | strata produce demo
  strata consume demo --from earliest
`

func printMainUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

// run runs the command line args (without the program name) and returns the
// exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	return c.run(ctx, args)
}

func (c *cli) run(ctx context.Context, args []string) int {
	stdout, stderr := c.stdout, c.stderr
	if len(args) == 0 {
		printMainUsage(stdout)
		return 0
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			printMainUsage(stdout)
			return 0
		}
		// strata help topic create == strata topic create --help
		name, rest = rest[0], append(slices.Clone(rest[1:]), "--help")
	}
	for _, cmd := range commands() {
		if cmd.name == name {
			return exitCode(stderr, cmd.run(ctx, c, rest))
		}
	}
	fmt.Fprintf(stderr, "strata: unknown command %q\nRun 'strata help' for the list of commands.\n", name)
	return 1
}

// errHelpShown ends a command after it printed its help: exit status 0.
var errHelpShown = errors.New("help shown")

// usageError is a mistake on the command line: the message says what, and
// the user is pointed at the command's --help.
type usageError struct {
	cmd string // e.g. "strata topic create"
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// runSubcommand runs the subcommand of cmd (e.g. "strata topic") that
// args[0] names, with the rest of args. A missing or unknown one is a usage
// error naming them all; help prints usage to stdout.
func runSubcommand(ctx context.Context, c *cli, cmd, usage string, subs []command, args []string) error {
	names := make([]string, len(subs))
	for i, sub := range subs {
		names[i] = sub.name
	}
	want := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	if len(args) == 0 {
		return usagef(cmd, "missing subcommand: %s", want)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, usage)
		return errHelpShown
	}
	for _, sub := range subs {
		if sub.name == args[0] {
			return sub.run(ctx, c, args[1:])
		}
	}
	return usagef(cmd, "unknown subcommand %q; want %s", args[0], want)
}

// oneArg checks that exactly one positional argument, the what (e.g.
// "topic name"), was given, and returns it.
func oneArg(cmd, what string, positional []string) (string, error) {
	switch len(positional) {
	case 0:
		return "", usagef(cmd, "missing the %s", what)
	case 1:
		return positional[0], nil
	}
	return "", usagef(cmd, "want one %s, got %d arguments: %s", what, len(positional), strings.Join(positional, " "))
}

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

func exitCode(stderr io.Writer, err error) int {
	if err == nil || errors.Is(err, errHelpShown) {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", ue.cmd, ue.err, ue.cmd)
		return 1
	}
	fmt.Fprintf(stderr, "strata: %v\n", err)
	return 1
}

// parseFlags parses args into fs, allowing flags before and after the
// positional arguments (`strata topic create demo --partitions 3`), and
// returns the positional ones. Everything after "--" is positional. On
// --help it prints help (a description, then every flag) to stdout and
// returns errHelpShown.
func (c *cli) parseFlags(fs *flag.FlagSet, help string, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var positional []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stdout, strings.TrimLeft(help, "\n"))
			fmt.Fprintln(c.stdout, "\nFlags:")
			printFlags(c.stdout, fs)
			return nil, errHelpShown
		}
		if err != nil {
			return nil, &usageError{cmd: fs.Name(), err: err}
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// printFlags is flag.PrintDefaults with GNU-style double dashes for long
// names, which is how the help texts and docs spell them (the flag package
// accepts both).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  " + dash + f.Name
		if name != "" {
			line += " " + name
		}
		usage = strings.ReplaceAll(usage, "\n", "\n    \t")
		line += "\n    \t" + usage
		if !isZeroDefault(f) {
			if isStringFlag(f) {
				line += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				line += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		fmt.Fprintln(w, line)
	})
}

func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "[]", "0s":
		return true
	}
	return false
}

func isStringFlag(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, isString := g.Get().(string)
	return isString
}
