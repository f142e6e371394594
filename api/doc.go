// Package api is gridsettle's HTTP API (api/README.md): the server and its
// middleware, authentication with bearer tokens and roles, the audit log,
// RFC 9457 errors, pagination and CSV, the OpenAPI document generated from
// the routes, and the registry, token and message-schema endpoints. Each other area
// (ingest, runs, ledger, alerts, exports) adds its endpoints in its own files
// of this package (api/ingest*.go, api/runs*.go, ...) without editing any
// shared file.
//
// It does not own the data behind the endpoints: handlers call the areas'
// stores (meters/postgres, settlement/ingest/readstore, settlement/postgres, ledger/postgres, ...).
//
// Invariants:
//   - every error answer is application/problem+json, with the status chosen
//     in one place (classify); an unclassified error is a 500 whose detail
//     never carries the error text, SQL or a stack trace (they are logged
//     with the request id instead);
//   - every response carries X-Request-Id, the server's own id, and every
//     log line of a request carries it as request_id (a client's
//     X-Request-Id is logged and audited beside it, never instead);
//   - nothing a client sends grows server state without bound: metric labels
//     come from fixed sets (route template or "unmatched", a standard method
//     or "OTHER", the status), and an audit row keeps at most 2,048 bytes of
//     path and 1,024 of detail;
//   - every query and path parameter is plain text (valid UTF-8, no control
//     characters, at most MaxParamBytes) before any handler or query sees
//     it, so bad bytes are a 400 naming the parameter, never a 500;
//   - CSV cells that a spreadsheet would run as formulas are neutralised;
//   - every /api/v1 route declares its roles, and only a valid, unrevoked
//     token of one of those roles reaches it, checked for every request by
//     a look-up that started after the request arrived (concurrent requests
//     share one, see batcher), so a revocation holds for the next request;
//   - a cached answer (statement pages) is never older than its request:
//     the cache's generation is read the same way;
//   - every POST/PUT/PATCH/DELETE of a route by a valid token is recorded in
//     api_audit, which the database keeps append-only: one that succeeds in
//     the same transaction as its change, with an action naming what
//     changed (Audited, Audit; no row, no change), one refused with
//     400/409/5xx after its answer; unauthenticated calls, calls matching no
//     route and 401/403/404 leave no row;
//   - the OpenAPI document at /api/v1/openapi.json (no token needed) is
//     generated from the same Route values the router serves, with every
//     named body type a component schema; it is byte for byte the committed
//     api/openapi.json (TestOpenAPIGolden; regenerate with
//     `go test ./api -run TestOpenAPIGolden -update`), and
//     TestAnswersMatchOpenAPI validates real answers of every route against
//     that file;
//   - lists negotiate JSON or CSV by the Accept header's weights (RFC 9110),
//     406 when neither is acceptable; answers are gzipped when the client
//     accepts it; routes with Route.ETag answer a strong ETag and 304 to a
//     matching If-None-Match;
//   - amounts are never floats: request numbers are read as text, output
//     decimals are strings.
//   - only what Mount adds lives outside /api/v1 besides the operational
//     routes: pages and assets that hold no data (the console, api/console),
//     served without a token and absent from the OpenAPI document.
//
// # How to add an endpoint
//
// 1. In your own file (e.g. api/runs.go), define a type that implements
// Routes and returns Route values. Paths are full OpenAPI paths with
// {param} placeholders; every path parameter and every query parameter must
// be declared in Params (undeclared query parameters are refused with a 400,
// and the declared Required/Type/Format/Enum/Min/Max are checked before your
// handler runs):
//
//	type RunRoutes struct{ Runs *settlementpg.Runs }
//
//	func (r RunRoutes) Routes() []Route {
//		return []Route{{
//			Method: http.MethodGet, Path: "/api/v1/runs", Roles: Readers,
//			Summary:  "List runs",
//			Params:   []Param{DayParam("operating_day", "only runs of this day")},
//			Response: ListBody(Run{}), // {"items":[Run...],"next_cursor"}; also text/csv
//			Handler:  r.list,
//		}, {
//			Method: http.MethodPost, Path: "/api/v1/runs", Roles: Operators,
//			Summary: "Start a run", Request: JSONBody(RunRequest{}),
//			Status: http.StatusCreated, Response: JSONBody(Run{}),
//			Errors: []int{http.StatusConflict}, Handler: r.start,
//		}}
//	}
//
// 2. Write the handler with the helpers; return errors, never write error
// bodies yourself:
//
//	func (r RunRoutes) list(c echo.Context) error {
//		day, err := QueryDay(c, "operating_day") // *settlement.Day, nil if absent; 400 names it
//		if err != nil {
//			return err
//		}
//		limit, err := Limit(c) // default 100, max 1000
//		if err != nil {
//			return err
//		}
//		var after runKey // your keyset struct with json tags
//		if _, err := Cursor(c, &after); err != nil {
//			return err
//		}
//		runs, err := r.Runs.List(c.Request().Context(), day, after.ID, limit+1) // fetch limit+1
//		if err != nil {
//			return err // Postgres 23505/23P01 -> 409, 23503/23514 -> 400, else 500
//		}
//		return List(c, runs, limit, func(x Run) any { return runKey{x.RunID} })
//	}
//
// A state-changing handler (POST, PUT, PATCH, DELETE) writes its change and
// the call's audit row in one transaction: Audited(c, pool, func(ctx, tx)
// (result, status, action, error)) when the change can run in a transaction
// it is given, or else the store's hook calling Audit(ctx, tx, c, status,
// action) before it commits (settlementpg.Runs.StartWithHook,
// exportpg.Exporter.ProduceWithHook). A successful call without its row is
// logged as a defect, and fails every test that makes one.
//
// Client errors: BadParam(name, format, args...) (400 naming the parameter),
// BadRequest, BadRow(row, line, column, ...), NotFoundf, Conflictf,
// Unavailablef, or E(kind, ...) for any Kind. Wrap store errors with %w; a
// sentinel of your store becomes a client error where you check it
// (errors.Is(err, ErrRunning) -> Conflictf(...)). Read JSON bodies with
// DecodeJSON (unknown fields refused, numbers as json.Number). The caller is
// CallerOf(c); log with Logger(c) (it carries request_id).
//
// 3. Output shapes: structs with json tags; decimals as strings with the
// field's fixed scale; instants as time.Time (UTC). The same struct gives the
// JSON, the CSV columns (nested structs flattened as parent.child) and the
// OpenAPI schema. A body that is not JSON (a file, PEM) is described with
// Body.Other, e.g. &Body{Other: map[string]Schema{"application/x-pem-file":
// {"type": "string"}}}.
//
// 4. The platform passes your Routes value to New in cmd/gridsettle:
//
//	api.New(cfg, log, reg, pool, checks, api.RegistryRoutes{Store: ...}, api.RunRoutes{...}, ...)
//
// 5. Test it in your own test file with a real database. The framework's
// test helpers (api/apitest_test.go) are yours to use: newTestServer(t,
// checks, extra...) builds a server over a fresh pgtest database with
// testAdminToken as --admin-token; s.do(req{method, path, token, body,
// contentType, accept}) calls it through Handler(); s.token(role) makes a
// stored token; problem(t, w, status) and ok(t, w, status, &v) decode
// answers. Register your area for every test server from an init function
// in your test file, and TestRoutesByRole (401/403/access for every route x
// role) and TestOpenAPIMatchesRouter cover your routes automatically;
// TestAnswersMatchOpenAPI fails until you drive your route there with real
// data (its answers are validated against api/openapi.json), and
// TestOpenAPIGolden until you regenerate that file:
//
//	func init() {
//		testAreas = append(testAreas, func(t *testing.T, pool *pgxpool.Pool) Routes {
//			return RunRoutes{Runs: settlementpg.NewRuns(pool)}
//		})
//	}
//
// TestRoutesByRole calls each route with every path parameter set to
// "nonexistent" and no body: your handler must answer that with a 4xx, never
// a 5xx.
package api
