package api

import (
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/shopspring/decimal"
)

type csvInner struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
}

type csvEmbedded struct {
	Version int `json:"version"`
}

type csvItem struct {
	ID     string            `json:"id"`
	Amount decimal.Decimal   `json:"amount"`
	At     time.Time         `json:"at"`
	Prev   *decimal.Decimal  `json:"prev"`
	Source csvInner          `json:"source"`
	Opt    *csvInner         `json:"opt"`
	Tags   []string          `json:"tags"`
	Meta   map[string]string `json:"meta"`
	Hidden string            `json:"-"`
	csvEmbedded
}

func TestWriteCSVFlattensLikeJSON(t *testing.T) {
	at := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	prev := decimal.RequireFromString("-1.50")
	items := []csvItem{
		{ID: "a", Amount: decimal.RequireFromString("12.340"), At: at, Prev: &prev,
			Source: csvInner{"ami.interval-reads", 3}, Opt: &csvInner{"x", 1},
			Tags: []string{"p", "q"}, Meta: map[string]string{"k": "v"}, Hidden: "secret",
			csvEmbedded: csvEmbedded{Version: 2}},
		{ID: "b,\"quoted\"", Amount: decimal.Zero, At: at},
	}
	e := echo.New()
	w := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), w)
	if err := WriteCSV(c, http.StatusOK, items); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"id", "amount", "at", "prev", "source.topic", "source.partition", "opt.topic", "opt.partition", "tags", "meta", "version"},
		{"a", "12.34", "2026-11-01T05:00:00Z", "-1.5", "ami.interval-reads", "3", "x", "1", `["p","q"]`, `{"k":"v"}`, "2"},
		{`b,"quoted"`, "0", "2026-11-01T05:00:00Z", "", "", "0", "", "", "", "", "0"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("csv\n got %q\nwant %q", rows, want)
	}
}

func TestCSVNeutralisesFormulas(t *testing.T) {
	type cell struct {
		V string `json:"v"`
	}
	cases := map[string]string{
		`=HYPERLINK("http://evil.example","x")`: `'=HYPERLINK("http://evil.example","x")`,
		"+SUM(A1:A2)":                           "'+SUM(A1:A2)",
		"-2+3":                                  "'-2+3",
		"@cmd":                                  "'@cmd",
		"\t=1":                                  "'\t=1",
		"\r=1":                                  "'\r=1",
		"-12.5":                                 "-12.5",
		"+3":                                    "+3",
		"-0.000100":                             "-0.000100",
		"-1e5":                                  "-1e5",
		"a=b":                                   "a=b",
	}
	var items []cell
	var want [][]string
	want = append(want, []string{"v"})
	for in, out := range cases {
		items = append(items, cell{in})
		want = append(want, []string{out})
	}
	w := httptest.NewRecorder()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), w)
	if err := WriteCSV(c, http.StatusOK, items); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("csv\n got %q\nwant %q", rows, want)
	}
}

func FuzzCursor(f *testing.F) {
	f.Add("eyJpZCI6IngifQ")
	f.Add("!!")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		q := r.URL.Query()
		q.Set("cursor", s)
		r.URL.RawQuery = q.Encode()
		var key idKey
		_, err := Cursor(echo.New().NewContext(r, httptest.NewRecorder()), &key)
		if err != nil {
			if e := classify(err); e.Kind != Invalid || e.Parameter != "cursor" {
				t.Fatalf("cursor %q: %v is not a 400 naming cursor", s, err)
			}
		}
	})
}
