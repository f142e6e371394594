package contractdoc

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCitations: the code of the repository (Go, SQL, JavaScript, HTML and
// CSS, tests included) cites only documents of the repository, and a
// heading it quotes beside one is in that document. A comment says the
// reason itself, not the number of the issue that asked for it.
func TestCitations(t *testing.T) {
	for _, v := range citationViolations(t, "../..") {
		t.Error(v)
	}
}

// TestCitationsPlanted: every kind of bad citation is found in a planted
// tree, and the good ones are not.
func TestCitationsPlanted(t *testing.T) {
	root := t.TempDir()
	// The planted text is spelt with placeholders so that this file does not
	// itself hold what it plants.
	spell := strings.NewReplacer("{md}", ".md", "{up}", "../", "{sh}", "shared/", "{de}", "design/", "{is}", "Issue", "{pr}", "(#")
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, spell.Replace(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(spell.Replace(text)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README{md}", "# top\n")
	write("meters/README{md}", "# meters\n## Validation and `quarantine`\n")
	write("meters/good.go", `package meters
// Reasons (meters/README{md} "Validation and
// quarantine"), see README{md} and {up}README{md}.
var _ = "meters/README{md}"
var _ = fmt.Sprint("README{md}", "a")
`)
	write("meters/bad.go", `package meters
// a (messages{md} "Validation and quarantine")
// b ({up}{sh}spec/api{md})
// c ({de}exactly-once{md})
// d, {is} 15: a reason by number
// e (meters/README{md} "No such heading")
// f fixed in {pr}12)
`)
	write("migrations/x.sql", "-- g (settlement{md})\n")
	got := citationViolations(t, root)
	for _, want := range []string{"bad.go:2", "bad.go:3", "bad.go:4", "bad.go:5", "bad.go:6", "bad.go:7", "x.sql:1"} {
		if !slices.ContainsFunc(got, func(v string) bool { return strings.Contains(v, want+":") }) {
			t.Errorf("no violation found at %s; found:\n%s", want, strings.Join(got, "\n"))
		}
	}
	for _, v := range got {
		if strings.Contains(v, "good.go") {
			t.Errorf("a good citation reported: %s", v)
		}
	}
}

var (
	// outside matches a citation of a file outside the repository: the
	// shared contract folders and design notes the repository was built from.
	outside = regexp.MustCompile(`\.\./shared\b|\bshared/(?:spec|design)\b|\bdesign[/][a-z-]+\.md\b`)
	// issueNumber matches a reference by number to an issue or pull request.
	issueNumber = regexp.MustCompile(`\b[Ii]ssues? +[0-9]+|\(#[0-9]+\)`)
	// document matches a cited Markdown file, with its heading when a quoted
	// one follows.
	document = regexp.MustCompile(`((?:\.\./|[A-Za-z0-9_-]+/)*[A-Za-z0-9_-]+\.md)\b(?:,?[ \t\x00]*"([A-Za-z][^"\n{};=]{0,99})")?`)
	// commentLead is the start of a comment's next line, so that a heading
	// quoted across two lines of a comment is read whole.
	commentLead = regexp.MustCompile(`\n[ \t]*(?://|--|\*)[ \t]*`)
)

// citationViolations returns, as "file:line: what", every bad citation in
// the code files under root.
func citationViolations(t *testing.T, root string) []string {
	t.Helper()
	var files, docs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".go", ".sql", ".js", ".html", ".css":
			files = append(files, p)
		case ".md":
			docs = append(docs, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		rel, _ := filepath.Rel(root, f)
		report := func(at int, what string) {
			out = append(out, rel+":"+strconv.Itoa(strings.Count(text[:at], "\n")+1)+": "+what)
		}
		for _, m := range outside.FindAllStringIndex(text, -1) {
			report(m[0], "cites a file outside the repository: "+text[m[0]:m[1]])
		}
		for _, m := range issueNumber.FindAllStringIndex(text, -1) {
			report(m[0], "cites an issue by number ("+text[m[0]:m[1]]+"): say the reason instead")
		}
		joined := commentLead.ReplaceAllStringFunc(text, func(s string) string { return " " + strings.Repeat("\x00", len(s)-1) })
		for _, m := range document.FindAllStringSubmatchIndex(joined, -1) {
			name := joined[m[2]:m[3]]
			if outside.MatchString(name) {
				continue
			}
			doc := resolve(root, filepath.Dir(f), name, docs)
			if doc == "" {
				report(m[0], "cites "+name+", which is not a file of the repository")
				continue
			}
			if m[4] >= 0 {
				if heading := strings.ReplaceAll(joined[m[4]:m[5]], "\x00", ""); !mentions(t, doc, heading) {
					report(m[0], "cites "+name+" \""+heading+"\", which that document does not hold")
				}
			}
		}
	}
	return out
}

// resolve returns the document a citation names: a path relative to the
// citing file's folder or to the repository's root, or a bare name that some
// document of the repository has.
func resolve(root, dir, name string, docs []string) string {
	for _, p := range []string{filepath.Join(dir, name), filepath.Join(root, name)} {
		if slices.Contains(docs, p) {
			return p
		}
	}
	if !strings.Contains(name, "/") {
		for _, d := range docs {
			if filepath.Base(d) == name {
				return d
			}
		}
	}
	return ""
}

// mentions reports whether the document holds the text, whitespace, case
// and backticks aside.
func mentions(t *testing.T, doc, text string) bool {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	norm := func(s string) string {
		return strings.ToLower(strings.Join(strings.Fields(strings.ReplaceAll(s, "`", "")), " "))
	}
	return strings.Contains(norm(string(b)), norm(text))
}
