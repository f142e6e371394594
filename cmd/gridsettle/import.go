package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/meters/greenbutton"
	mkafka "github.com/gridsettle/gridsettle/meters/kafka"
	"github.com/gridsettle/gridsettle/meters/nem12"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// defaultImportBroker is the --kafka-brokers default of meters/README.md
// "Importing real meter-data formats": the embedded
// broker of dev.
const defaultImportBroker = "127.0.0.1:9092"

// importFormat is one file format `gridsettle import` reads.
type importFormat struct {
	name  string
	short string
	// parse reads one file with the options of the command line.
	parse func(r io.Reader, fs *pflag.FlagSet, version int64, source string) ([]meters.ReadBlock, meters.Summary, error)
	// flags adds the format's own flags.
	flags func(fs *pflag.FlagSet)
}

var importFormats = []importFormat{
	{
		name:  "greenbutton",
		short: "Import Green Button (NAESB ESPI) XML feeds: one Kafka transaction per file",
		flags: func(fs *pflag.FlagSet) {
			fs.String("meter-prefix", greenbutton.DefaultMeterPrefix,
				"`prefix` of every meter_id, before the UsagePoint id (env GRIDSETTLE_IMPORT_METER_PREFIX)")
			fs.String("meter-id", "",
				"`meter_id` of the file's only UsagePoint, instead of prefix + its id (env GRIDSETTLE_IMPORT_METER_ID)")
		},
		parse: func(r io.Reader, fs *pflag.FlagSet, version int64, source string) ([]meters.ReadBlock, meters.Summary, error) {
			prefix, _ := fs.GetString("meter-prefix")
			id, _ := fs.GetString("meter-id")
			return greenbutton.Parse(r, greenbutton.Options{MeterPrefix: prefix, MeterID: id, Version: version, Source: source})
		},
	},
	{
		name:  "nem12",
		short: "Import AEMO NEM12 files (CSV, or a .zip of CSVs): one Kafka transaction per file",
		flags: func(*pflag.FlagSet) {},
		parse: func(r io.Reader, _ *pflag.FlagSet, version int64, source string) ([]meters.ReadBlock, meters.Summary, error) {
			return nem12.Parse(r, nem12.Options{Version: version, Source: source})
		},
	},
}

// newImportCmd is `gridsettle import greenbutton|nem12 FILE...`
// (meters/README.md "Importing real meter-data formats").
func newImportCmd(m *Main) *cobra.Command {
	c := &cobra.Command{
		Use:   "import",
		Short: "Import meter-data files into the reads topic, each file in one Kafka transaction",
	}
	for _, f := range importFormats {
		c.AddCommand(m.importFormatCmd(f))
	}
	return c
}

// importFlags are the flags of every import command besides the platform's
// log and Kafka groups; each also reads GRIDSETTLE_IMPORT_<NAME>.
var importFlags = []string{"topic", "version", "source", "meter-prefix", "meter-id"}

func (m *Main) importFormatCmd(f importFormat) *cobra.Command {
	c := &cobra.Command{
		Use:   f.name + " FILE...",
		Short: f.short,
		Args:  cobra.MinimumNArgs(1),
	}
	fs := c.Flags()
	bindFlags(fs, groupLog|groupKafka)
	brokers := fs.Lookup("kafka-brokers")
	brokers.DefValue = defaultImportBroker
	_ = brokers.Value.Set(defaultImportBroker) // a default, not a change: the environment still wins
	fs.String("topic", kafka.DefaultTopics().Reads, "`topic` of interval reads (env GRIDSETTLE_IMPORT_TOPIC)")
	fs.Int64("version", 1, "`version` of every read: raise it to re-issue corrected files (env GRIDSETTLE_IMPORT_VERSION)")
	fs.String("source", "", "lineage `text` of every read, at most 128 characters (default import:"+f.name+":<file name>; env GRIDSETTLE_IMPORT_SOURCE)")
	f.flags(fs)
	c.RunE = func(cmd *cobra.Command, files []string) error {
		if err := applyEnv(cmd, m.LookupEnv, importFlags...); err != nil {
			return err
		}
		cfg, err := loadConfig(fs, m.LookupEnv)
		if err != nil {
			return err
		}
		topic, _ := fs.GetString("topic")
		version, _ := fs.GetInt64("version")
		source, _ := fs.GetString("source")
		if topic == "" {
			return flagError("topic", "", fmt.Errorf("must not be empty"))
		}
		if version < 1 {
			return flagError("version", "", fmt.Errorf("%d is below 1", version))
		}
		if n := utf8.RuneCountInString(source); n > meters.MaxSourceChars {
			return flagError("source", "", fmt.Errorf("%d characters, more than %d", n, meters.MaxSourceChars))
		}
		log := newLogger(m.Stderr, cfg)
		if err := cfg.Kafka.Validate(); err != nil {
			return err
		}
		kopts, err := cfg.Kafka.ClientOpts()
		if err != nil {
			return err
		}
		im, err := mkafka.NewImporter(mkafka.Config{Client: kopts, Topic: topic}, log)
		if err != nil {
			return err
		}
		failed := 0
		for _, file := range files {
			src := source
			if src == "" {
				src = truncate("import:"+f.name+":"+filepath.Base(file), meters.MaxSourceChars)
			}
			if err := importFile(cmd.Context(), m.Stdout, im, f, fs, file, version, src); err != nil {
				fmt.Fprintf(m.Stdout, "%s: NOT IMPORTED: %s\n", file, describe(err))
				failed++
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d files not imported; nothing of them was produced", failed, len(files))
		}
		return nil
	}
	return c
}

// importFile parses one file and produces it in one transaction, printing
// its summary; a file that cannot be parsed produces nothing.
func importFile(ctx context.Context, out io.Writer, im *mkafka.Importer, f importFormat, fs *pflag.FlagSet,
	file string, version int64, source string) error {
	r, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	blocks, sum, err := f.parse(r, fs, version, source)
	r.Close()
	if err != nil {
		return fmt.Errorf("rejected: %w", err)
	}
	rc, err := im.Import(ctx, blocks)
	if err != nil {
		return err
	}
	printSummary(out, file, sum, rc)
	return nil
}

func printSummary(out io.Writer, file string, sum meters.Summary, rc mkafka.Receipt) {
	fmt.Fprintf(out, "%s: %d meters, %d reads in %d records", file, sum.Meters(), sum.Reads(), rc.Records)
	if rc.TransactionalID != "" {
		fmt.Fprintf(out, ", one transaction (%s)", rc.TransactionalID)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, c := range sum.Channels {
		fmt.Fprintf(tw, "  %s\t%s\t%d s\t%d reads\t%s kWh\n", c.MeterID, c.Channel, c.IntervalSeconds, c.Reads, c.KWh)
	}
	tw.Flush()
	for _, k := range sum.Skipped {
		fmt.Fprintf(out, "  skipped %d: %s: %s\n", k.Count, k.Reason, k.Detail)
	}
}

// truncate cuts s to at most n characters.
func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
