package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/ledger"
	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
)

// ChainHeads are the ledger chain heads that exports recorded
// (lineage.ledger of their manifests), one per export whose run posted
// entries, in registry order.
func ChainHeads(ctx context.Context, q querier) ([]ledger.Anchor, error) {
	rows, err := q.Query(ctx, `
		SELECT export_id, (manifest #>> '{lineage,ledger,last_entry_id}')::bigint, manifest #>> '{lineage,ledger,chain_head}'
		FROM exports
		WHERE manifest #>> '{lineage,ledger,chain_head}' IS NOT NULL
		ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("read the chain heads of exports: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Anchor, error) {
		var a ledger.Anchor
		err := r.Scan(&a.ExportID, &a.EntryID, &a.Hash)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the chain heads of exports: %w", err)
	}
	return out, nil
}

// VerifyLedger is what `gridsettle ledger verify` and GET
// /api/v1/ledger/verify run: the journal's hash chain and balances, and
// every chain head an export recorded, which the journal must still hold
// unchanged (api/README.md "Least privilege in the database").
func VerifyLedger(ctx context.Context, db *pgxpool.Pool) (ledgerpg.Report, error) {
	anchors, err := ChainHeads(ctx, db)
	if err != nil {
		return ledgerpg.Report{}, err
	}
	return ledgerpg.Verify(ctx, db, anchors...)
}
