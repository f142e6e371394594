package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// Every relative link of the repository's Markdown documents points to a file
// that exists and, when it names a heading (#anchor) of a Markdown file, to a
// heading that exists: the README is short because it links to documents
// beside the code, so a moved or renamed section must not leave it pointing
// nowhere.
func TestDocumentLinks(t *testing.T) {
	const root = "../.."
	docs := map[string]string{} // slash path from root → text
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "gridsettle-data" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".md") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		docs[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := docs["README.md"]; !ok {
		t.Fatal("no README.md at the repository root")
	}
	checked := 0
	for doc, text := range docs {
		for _, target := range markdownLinks(text) {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			resolved := doc
			if file != "" {
				resolved = filepath.ToSlash(filepath.Join(filepath.Dir(doc), file))
				if resolved == ".." || strings.HasPrefix(resolved, "../") {
					t.Errorf("%s: link %q leaves the repository: a clone elsewhere has no %s", doc, target, resolved)
					continue
				}
				if _, err := os.Stat(filepath.Join(root, resolved)); err != nil {
					t.Errorf("%s: link %q: %s does not exist", doc, target, resolved)
					continue
				}
			}
			checked++
			if anchor == "" || !strings.HasSuffix(resolved, ".md") {
				continue
			}
			if !headingAnchors(docs[resolved])[anchor] {
				t.Errorf("%s: link %q: %s has no heading #%s", doc, target, resolved, anchor)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d relative links checked: the link pattern no longer matches the documents", checked)
	}
}

var (
	fencedBlock = regexp.MustCompile("(?ms)^```.*?^```")
	codeSpan    = regexp.MustCompile("`[^`\n]*`")
	linkTarget  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
)

// markdownLinks returns the targets of a document's inline links and images,
// leaving out code, where brackets are not links.
func markdownLinks(text string) []string {
	text = fencedBlock.ReplaceAllString(text, "")
	text = codeSpan.ReplaceAllString(text, "code")
	var targets []string
	for _, m := range linkTarget.FindAllStringSubmatch(text, -1) {
		targets = append(targets, m[1])
	}
	return targets
}

// headingAnchors returns the anchors GitHub gives a document's headings:
// lower case, punctuation other than '-' and '_' dropped, spaces as '-'.
func headingAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	for line := range strings.SplitSeq(fencedBlock.ReplaceAllString(text, ""), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}
