package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
)

// ExportRoutes are the regulatory export endpoints (reporting/README.md): list,
// produce, one export, its files byte for byte, server-side verification,
// and the signing public key.
type ExportRoutes struct {
	Exports *exportpg.Exporter
}

// ExportRequest is the body of POST /api/v1/exports.
type ExportRequest struct {
	OperatingDay string `json:"operating_day"` // YYYY-MM-DD
	RunType      string `json:"run_type"`
	Version      int    `json:"version"`
}

// ExportAnswer is POST /api/v1/exports's answer: the export, and, when it
// already existed and was regenerated to compare, whether the bytes were
// identical (false is a defect).
type ExportAnswer struct {
	exportpg.Export
	Identical *bool `json:"identical,omitempty"`
}

// ExportVerification is the answer of GET /api/v1/exports/{export_id}/verify:
// what was checked, and when ok is false, the file at fault and why.
type ExportVerification struct {
	OK             bool     `json:"ok"`
	ExportID       string   `json:"export_id"`
	ManifestSHA256 string   `json:"manifest_sha256,omitempty"`
	SigningKeyID   string   `json:"signing_key_id,omitempty"`
	Checks         []string `json:"checks"`
	File           string   `json:"file,omitempty"`
	Error          string   `json:"error,omitempty"`
}

// exportCursor is the list's keyset: registry order.
type exportCursor struct {
	Seq int64 `json:"seq"`
}

// exportMediaTypes are the media types of an export folder's files.
var exportMediaTypes = map[string]string{
	parquet.StatementsFile:  "application/vnd.apache.parquet",
	parquet.IntervalsFile:   "application/vnd.apache.parquet",
	parquet.LedgerFile:      "application/vnd.apache.parquet",
	parquet.EstimatesFile:   "application/vnd.apache.parquet",
	reporting.ManifestFile:  echo.MIMEApplicationJSON,
	reporting.SignatureFile: "text/plain; charset=utf-8",
	reporting.PublicKeyFile: "application/x-pem-file",
}

// Routes implements Routes.
func (g ExportRoutes) Routes() []Route {
	id := Path("export_id", "e.g. export-2026-11-01-final-v2")
	files := map[string]Schema{}
	for _, mt := range exportMediaTypes {
		files[mt] = Schema{"type": "string", "format": "binary"}
	}
	files[echo.MIMEApplicationJSON] = Schema{"$ref": "#/components/schemas/Manifest"} // manifest.json
	return []Route{
		{
			Method: http.MethodGet, Path: "/api/v1/exports", Roles: ExportReaders,
			Summary:  "List regulatory exports, in the order they were written",
			Params:   []Param{DayParam("operating_day", "only exports of this operating day")},
			Response: ListBody(exportpg.Export{}), Handler: g.list,
		},
		{
			Method: http.MethodPost, Path: "/api/v1/exports", Roles: Operators,
			Summary: "Write the export of a completed run",
			Description: "201 with the export when it is written. When the run already has an export it is never " +
				"overwritten: it is regenerated into a scratch folder and compared byte for byte, and the answer is " +
				"200 with the export and identical true or false (false is a defect to alert on). 503 when the export " +
				"folder does not answer in time.",
			Request: JSONBody(ExportRequest{}), Status: http.StatusCreated, Response: JSONBody(ExportAnswer{}),
			AlsoOK: []int{http.StatusOK}, Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable}, Handler: g.produce,
		},
		{
			Method: http.MethodGet, Path: "/api/v1/exports/public-key", Roles: ExportReaders,
			Summary:  "The public key that signs export manifests (PEM)",
			Response: &Body{Other: map[string]Schema{"application/x-pem-file": {"type": "string"}}},
			Handler:  g.publicKey,
		},
		{
			Method: http.MethodGet, Path: "/api/v1/exports/{export_id}", Roles: ExportReaders,
			Summary: "One export with its parsed manifest", Params: []Param{id},
			Response: JSONBody(exportpg.Export{}), Handler: g.get,
		},
		{
			Method: http.MethodGet, Path: "/api/v1/exports/{export_id}/files/{name}", Roles: ExportReaders,
			Summary: "One file of an export's folder, byte for byte",
			Params: []Param{id, {Name: "name", In: "path", Required: true, Enum: reporting.FolderFiles,
				Description: "a Parquet file, manifest.json, manifest.json.sig or signing-key.pub.pem"}},
			Response: &Body{Other: files}, Handler: g.file,
		},
		{
			Method: http.MethodGet, Path: "/api/v1/exports/{export_id}/verify", Roles: ExportReaders,
			Summary: "Verify an export's folder on the server",
			Description: "Signature (with the server's signing key), every file's hash and size, and row counts, " +
				"control totals and lineage recomputed by reading the Parquet files. ok false names the first " +
				"discrepancy.",
			Params: []Param{id}, Response: JSONBody(ExportVerification{}), Handler: g.verify,
		},
	}
}

func (g ExportRoutes) list(c echo.Context) error {
	day, err := QueryDay(c, "operating_day")
	if err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after exportCursor
	if _, err := Cursor(c, &after); err != nil {
		return err
	}
	items, err := g.Exports.List(c.Request().Context(), day, after.Seq, limit+1)
	if err != nil {
		return err
	}
	return List(c, items, limit, func(x exportpg.Export) any { return exportCursor{Seq: x.Seq} })
}

func (g ExportRoutes) produce(c echo.Context) error {
	var req ExportRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	day, t, err := dayAndRunType(req.OperatingDay, req.RunType)
	if err != nil {
		return err
	}
	if req.Version < 1 {
		return BadParam("version", "must be an integer ≥ 1")
	}
	p, err := g.Exports.ProduceWithHook(c.Request().Context(), day, t, req.Version,
		func(ctx context.Context, tx pgx.Tx, p exportpg.Produced) error {
			if p.Created {
				return Audit(ctx, tx, c, http.StatusCreated, "wrote export "+p.Export.ExportID)
			}
			return Audit(ctx, tx, c, http.StatusOK, fmt.Sprintf("regenerated export %s to compare: identical %t", p.Export.ExportID, *p.Identical))
		})
	switch {
	case errors.Is(err, exportpg.ErrNotFound):
		return NotFoundf("no run %s of %s version %d", t, day, req.Version)
	case errors.Is(err, exportpg.ErrNotCompleted):
		return Conflictf("run %s of %s version %d has not completed", t, day, req.Version)
	case errors.Is(err, exportpg.ErrStuck):
		return Unavailablef("the export folder does not answer; try again later")
	case err != nil:
		return err
	}
	status := http.StatusOK
	if p.Created {
		status = http.StatusCreated
	}
	return c.JSON(status, ExportAnswer{Export: p.Export, Identical: p.Identical})
}

func (g ExportRoutes) get(c echo.Context) error {
	id, err := PathID(c, "export_id")
	if err != nil {
		return err
	}
	x, err := g.Exports.Get(c.Request().Context(), id)
	if errors.Is(err, exportpg.ErrNotFound) {
		return NotFoundf("export %q not found", id)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, x)
}

func (g ExportRoutes) file(c echo.Context) error {
	id, err := PathID(c, "export_id")
	if err != nil {
		return err
	}
	name := c.Param("name")
	f, err := g.Exports.Open(c.Request().Context(), id, name)
	if errors.Is(err, exportpg.ErrNotFound) {
		return NotFoundf("export %q has no file %q", id, name)
	} else if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat export file: %w", err)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentLength, fmt.Sprint(fi.Size()))
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", name))
	return c.Stream(http.StatusOK, exportMediaTypes[name], f)
}

func (g ExportRoutes) verify(c echo.Context) error {
	id, err := PathID(c, "export_id")
	if err != nil {
		return err
	}
	r, err := g.Exports.Verify(c.Request().Context(), id)
	if errors.Is(err, exportpg.ErrNotFound) {
		return NotFoundf("export %q not found", id)
	}
	var d *reporting.Discrepancy
	if err != nil && !errors.As(err, &d) {
		return err
	}
	v := ExportVerification{OK: err == nil, ExportID: id, ManifestSHA256: r.ManifestSHA256, SigningKeyID: r.KeyID, Checks: r.Checks}
	if v.Checks == nil {
		v.Checks = []string{}
	}
	if d != nil {
		v.File, v.Error = d.File, d.Error()
		Logger(c).Error("export does not verify", "export_id", id, "file", d.File, "err", d)
	}
	return c.JSON(http.StatusOK, v)
}

func (g ExportRoutes) publicKey(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderContentDisposition, fmt.Sprintf("inline; filename=%q", reporting.PublicKeyFile))
	return c.Blob(http.StatusOK, "application/x-pem-file", g.Exports.PublicKeyPEM())
}
