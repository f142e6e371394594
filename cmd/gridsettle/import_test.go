package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
)

// runCommand runs the command made by newCmd in-process with ARGS and env as
// the environment, and returns its output.
func runCommand(t *testing.T, newCmd func(*Main) *cobra.Command, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Stdout:    &out, Stderr: &errOut,
	}
	// Under a root, as in the binary: command-local variables are named
	// after the top-level command.
	c := newCmd(m)
	root := &cobra.Command{Use: "gridsettle", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(c)
	root.SetArgs(append([]string{c.Name()}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

// runImport runs `gridsettle import ARGS...` in-process.
func runImport(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	return runCommand(t, newImportCmd, env, args...)
}

// committed reads n records of the reads topic read_committed, each valid
// against the reads schema.
func committed(t *testing.T, addr string, n int) []map[string]any {
	t.Helper()
	sv, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a safety net, not an assertion
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("ami.interval-reads"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []map[string]any
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var v map[string]any
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatal(err)
			}
			if err := sv.Value(meters.ReadsSchema, r.Value); err != nil {
				t.Error(err)
			}
			out = append(out, v)
		})
	}
	return out
}

// spaces collapses the output's column padding.
func spaces(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(strings.Join(strings.Fields(line), " ") + "\n")
	}
	return b.String()
}

func TestImportCommand(t *testing.T) {
	addr := kafkatest.New(t)[0]
	const data = "../../meters/"

	out, err := runImport(t, nil, "nem12", data+"nem12/testdata/unzipped/Example_NEM12_multiple_meters.csv",
		"--kafka-brokers", addr, data+"nem12/testdata/invalid/Example_NEM12_15min_200_30min_300.csv")
	if err == nil || !strings.Contains(err.Error(), "1 of 2 files not imported") {
		t.Errorf("error %v, want one file not imported", err)
	}
	for _, want := range []string{
		"Example_NEM12_multiple_meters.csv: 3 meters, 768 reads in 4 records, one transaction (gridsettle-import-",
		"NCDE001111:2 import 900 s 192 reads 19.2 kWh",
		"skipped 192: unsupported_suffix: NMI NDDD001888 suffix K2",
		"Example_NEM12_15min_200_30min_300.csv: NOT IMPORTED: rejected: line 3: 300 record has 55 fields",
	} {
		if !strings.Contains(spaces(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	recs := committed(t, addr, 4)
	if recs[0]["source"] != "import:nem12:Example_NEM12_multiple_meters.csv" || recs[0]["version"] != float64(1) {
		t.Errorf("record %v", recs[0])
	}

	// Flags from the environment, after the file; --meter-id for the one
	// UsagePoint. A command-local flag reads its command's variable, never
	// the generic one (GRIDSETTLE_VERSION may well be a deployment's own).
	out, err = runImport(t, map[string]string{"GRIDSETTLE_KAFKA_BROKERS": addr, "GRIDSETTLE_IMPORT_VERSION": "2", "GRIDSETTLE_VERSION": "7"},
		"greenbutton", data+"greenbutton/testdata/nist-sgip/electric_containerized.xml", "--meter-id", "MTR-7", "--source", "utility-x")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 meters, 8 reads in 2 records") || !strings.Contains(spaces(out), "MTR-7 import 3600 s 8 reads 4.086 kWh") {
		t.Errorf("output:\n%s", out)
	}
	recs = committed(t, addr, 6)
	var gb []map[string]any
	for _, r := range recs {
		if r["meter_id"] == "MTR-7" {
			gb = append(gb, r)
		}
	}
	if len(gb) != 2 || gb[0]["version"] != float64(2) || gb[0]["source"] != "utility-x" {
		t.Errorf("records %v", gb)
	}

	if _, err := runImport(t, nil, "nem12", "x.csv", "--version", "0"); err == nil || !strings.Contains(err.Error(), "--version") {
		t.Errorf("--version 0: %v", err)
	}
}
