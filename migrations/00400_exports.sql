-- +goose Up
-- Regulatory exports (reporting/README.md): one row per published export
-- folder. The folder under the export root is the record; this row makes it
-- listable and chains the manifests of one operating day.
CREATE TABLE exports (
    export_id                text        PRIMARY KEY,  -- export-{day}-{run_type}-v{version}
    -- creation order: the previous export of the same day (smaller seq)
    -- gives previous_manifest_sha256
    seq                      bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    operating_day            date        NOT NULL,
    run_type                 text        NOT NULL,
    version                  int         NOT NULL,
    run_id                   text        NOT NULL UNIQUE REFERENCES runs,
    dir                      text        NOT NULL,  -- relative to the export root: {day}/{run_type}-v{version}
    manifest_sha256          text        NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    previous_manifest_sha256 text,
    files                    jsonb       NOT NULL,  -- the manifest's files: name, sha256, bytes, rows
    manifest                 jsonb       NOT NULL,  -- the parsed manifest, for listing without the folder
    created_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (operating_day, run_type, version)
);
CREATE INDEX exports_day ON exports (operating_day, seq);

-- +goose Down
DROP TABLE exports;
