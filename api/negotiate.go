package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// HTTP headers of content negotiation and conditional requests.
const (
	headerETag        = "ETag"
	headerIfNoneMatch = "If-None-Match"
)

// weighted is one element of an Accept or Accept-Encoding header: a media
// range (type/subtype, type/* or */*) or a coding, and its weight.
type weighted struct {
	name string // lower case, parameters other than q dropped
	q    int    // in thousandths: 0 to 1000
}

// maxWeighted bounds the elements read from one header: a client cannot
// make the server parse a megabyte of commas.
const maxWeighted = 64

// parseWeighted reads a comma-separated list of elements with optional
// ;q= weights (RFC 9110 §12.4.2). An element with a malformed weight is
// dropped, as if the client had not sent it.
func parseWeighted(header string) []weighted {
	var out []weighted
	for part := range strings.SplitSeq(header, ",") {
		if len(out) == maxWeighted {
			break
		}
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		w := weighted{name: name, q: 1000}
		valid := true
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if !strings.EqualFold(strings.TrimSpace(k), "q") {
				continue
			}
			q, ok := parseQ(strings.TrimSpace(v))
			valid = valid && ok
			w.q = q
		}
		if valid {
			out = append(out, w)
		}
	}
	return out
}

// parseQ parses a weight, 0 to 1 with at most three decimals (RFC 9110
// §12.4.2 "qvalue"), in thousandths: exact, as the grammar is.
func parseQ(v string) (int, bool) {
	if v == "" || len(v) > 5 || (v[0] != '0' && v[0] != '1') || (len(v) > 1 && v[1] != '.') {
		return 0, false
	}
	q, scale := int(v[0]-'0')*1000, 100
	for _, c := range v[min(2, len(v)):] {
		if c < '0' || c > '9' {
			return 0, false
		}
		q, scale = q+int(c-'0')*scale, scale/10
	}
	return q, q <= 1000
}

// acceptWeight is the weight the Accept elements give the media type offer:
// that of the most specific range matching it (RFC 9110 §12.5.1), 0 when
// none does.
func acceptWeight(accept []weighted, offer string) int {
	typ, _, _ := strings.Cut(offer, "/")
	best, q := 0, 0
	for _, a := range accept {
		spec := 0
		switch {
		case a.name == offer:
			spec = 3
		case a.name == typ+"/*":
			spec = 2
		case a.name == "*/*":
			spec = 1
		}
		if spec > best {
			best, q = spec, a.q
		}
	}
	return q
}

// negotiate picks the media type of offers that the Accept header prefers:
// the highest weight above 0, ties to the earlier offer (the server's
// preference). Without an Accept header every offer is acceptable. ok is
// false when none is.
func negotiate(accept string, offers ...string) (string, bool) {
	if strings.TrimSpace(accept) == "" {
		return offers[0], true
	}
	elems := parseWeighted(accept)
	chosen, best := "", 0
	for _, o := range offers {
		if q := acceptWeight(elems, o); q > best {
			chosen, best = o, q
		}
	}
	return chosen, best > 0
}

// WantsCSV reports whether the client prefers text/csv to JSON for a list
// (RFC 9110 content negotiation: Accept: text/csv;q=0.5, application/json;q=0.1
// is CSV). An Accept header that takes neither is a 406.
func WantsCSV(c echo.Context) (bool, error) {
	if h := c.Response().Header(); !slices.Contains(h.Values(echo.HeaderVary), echo.HeaderAccept) {
		h.Add(echo.HeaderVary, echo.HeaderAccept)
	}
	accept := strings.Join(c.Request().Header.Values(echo.HeaderAccept), ",")
	mt, ok := negotiate(accept, echo.MIMEApplicationJSON, MIMETextCSV)
	if !ok {
		return false, E(NotAcceptable, "this list is offered as application/json or text/csv; the Accept header takes neither")
	}
	return mt == MIMETextCSV, nil
}

// negotiateList refuses a list request whose Accept header takes neither
// JSON nor CSV before its handler does any work.
func negotiateList(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, err := WantsCSV(c); err != nil {
			return err
		}
		return next(c)
	}
}

// acceptsGzip reports whether the Accept-Encoding header takes gzip: named
// or by * with a weight above 0.
func acceptsGzip(r *http.Request) bool {
	q, spec := 0, 0
	for _, e := range parseWeighted(strings.Join(r.Header.Values(echo.HeaderAcceptEncoding), ",")) {
		switch {
		case e.name == "gzip" || e.name == "x-gzip":
			q, spec = e.q, 2
		case e.name == "*" && spec < 2:
			q, spec = e.q, 1
		}
	}
	return q > 0
}

// gzipMinLength is the smallest answer compressed: below it gzip's own
// framing eats most of the gain.
const gzipMinLength = 1024

// compress gzips answers for clients that ask (Accept-Encoding: gzip).
// /metrics is left to promhttp, which compresses by itself.
func (s *Server) compress() echo.MiddlewareFunc {
	return middleware.GzipWithConfig(middleware.GzipConfig{
		MinLength: gzipMinLength,
		Skipper: func(c echo.Context) bool {
			if c.Path() == "/metrics" {
				return true
			}
			if !acceptsGzip(c.Request()) {
				// The answer depends on the header all the same.
				c.Response().Header().Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
				return true
			}
			return false
		},
	})
}

// etag gives the 200 answers of routes with Route.ETag a strong ETag and
// answers 304 without a body when If-None-Match names it. A handler that
// knows its ETag sets the header before writing (cached statement pages);
// otherwise the answer is held back and the ETag is the hash of the bytes
// sent. Either way each content coding gets its own, as RFC 9110 §8.8.3
// wants of strong validators: etag runs outside compress, so it hashes the
// compressed bytes, and it marks a handler's ETag of a gzipped answer.
func (s *Server) etag(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Method != http.MethodGet || !s.etagged[c.Path()] {
			return next(c)
		}
		res := c.Response()
		w := &etagWriter{ResponseWriter: res.Writer, res: res, ifNoneMatch: c.Request().Header.Values(headerIfNoneMatch)}
		res.Writer = w
		err := next(c)
		res.Writer = w.ResponseWriter
		if ferr := w.finish(); ferr != nil && err == nil {
			err = fmt.Errorf("write the answer: %w", ferr)
		}
		return err
	}
}

// etagWriter is the writer of an answer with an ETag.
type etagWriter struct {
	http.ResponseWriter
	res         *echo.Response
	ifNoneMatch []string
	status      int
	held        *bytes.Buffer // the answer to hash, when its handler gave no ETag
	notModified bool          // 304 sent: the body is dropped
}

func (w *etagWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	h := w.Header()
	tag := h.Get(headerETag)
	switch {
	case code != http.StatusOK:
		h.Del(headerETag)
	case tag == "":
		w.held = &bytes.Buffer{}
		return // finish sends it
	case h.Get(echo.HeaderContentEncoding) == "gzip":
		tag = strings.TrimSuffix(tag, `"`) + `-gzip"`
		h.Set(headerETag, tag)
	}
	if code == http.StatusOK && noneMatch(w.ifNoneMatch, tag) {
		w.notModified = true
		w.sendNotModified()
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *etagWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	switch {
	case w.notModified:
		return len(b), nil
	case w.held != nil:
		return w.held.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// finish sends a held answer with the hash of its bytes as ETag, or a 304.
func (w *etagWriter) finish() error {
	if w.held == nil {
		return nil
	}
	tag := strongETag(w.held.Bytes())
	w.Header().Set(headerETag, tag)
	if noneMatch(w.ifNoneMatch, tag) {
		w.sendNotModified()
		return nil
	}
	w.ResponseWriter.WriteHeader(w.status)
	_, err := w.ResponseWriter.Write(w.held.Bytes())
	return err
}

// sendNotModified answers 304 with the 200's validator and Vary but no
// representation headers.
func (w *etagWriter) sendNotModified() {
	for _, k := range []string{echo.HeaderContentType, echo.HeaderContentLength, echo.HeaderContentEncoding} {
		w.Header().Del(k)
	}
	w.res.Status, w.res.Size = http.StatusNotModified, 0
	w.ResponseWriter.WriteHeader(http.StatusNotModified)
}

// strongETag is a strong validator of b: a quoted, truncated SHA-256.
func strongETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// noneMatch reports whether If-None-Match names tag or is *; the comparison
// is the weak one RFC 9110 §13.1.2 prescribes for it.
func noneMatch(values []string, tag string) bool {
	n := 0
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if n++; n > maxWeighted {
				return false
			}
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" || t == tag {
				return true
			}
		}
	}
	return false
}
