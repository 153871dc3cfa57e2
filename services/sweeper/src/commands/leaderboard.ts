import type { TlsweepClient } from '../client.js';
import { groupsTable, leaderboardCsv, leaderboardTable, toRow, type LeaderboardRow } from '../format.js';
import type { TableOptions } from '../table.js';

export interface LeaderboardOptions {
  sweep?: string;
  top?: number;
  groupBy?: string;
  sortBy?: string;
  backbone?: string;
  status?: string;
  json?: boolean;
  /** RFC 4180 CSV instead of a table. */
  csv?: boolean;
  /** Width and colour of the table. @default as wide as the content, no colour */
  table?: TableOptions;
  /** Fetch every page, not just the first `top`. */
  all?: boolean;
}

/** Fetches leaderboard rows (following pages when `all`), ranked from 1. */
export async function fetchLeaderboard(client: TlsweepClient, o: LeaderboardOptions): Promise<{ rows: LeaderboardRow[]; total: number; groups: string }> {
  const rows: LeaderboardRow[] = [];
  let pageToken = '';
  let total = 0;
  let groups = '';
  do {
    const r = await client.query({ sweepId: o.sweep ?? '', backbone: o.backbone ?? '', status: o.status ?? '', sortBy: o.sortBy ?? '', limit: o.top ?? 20, pageToken, groupBy: o.groupBy ?? '' });
    total = r.total;
    for (const t of r.rows) rows.push(toRow(t, rows.length + 1));
    if (o.groupBy && !groups) groups = groupsTable(o.groupBy, r.sortBy, r.groups, o.table);
    pageToken = r.nextPageToken;
  } while (o.all && pageToken);
  return { rows, total, groups };
}

export async function printLeaderboard(client: TlsweepClient, o: LeaderboardOptions, out: (s: string) => void = console.log): Promise<LeaderboardRow[]> {
  const { rows, total, groups } = await fetchLeaderboard(client, { ...o, table: o.csv || o.json ? undefined : o.table });
  if (o.json) {
    out(JSON.stringify(rows, null, 2));
    return rows;
  }
  if (o.csv) {
    // console.log adds the last line break; the records inside end in CRLF.
    out(leaderboardCsv(rows).replace(/\r\n$/, ''));
    return rows;
  }
  out(leaderboardTable(rows, o.table));
  if (rows.length < total) out(`(${rows.length} of ${total} trials; --top N for more)`);
  // Say where the weights came from: a leaderboard of pretrained vs random-init backbones means different things.
  const sources = new Map<string, string>();
  for (const r of rows) if (r.weightsSource) sources.set(r.backbone, r.weightsSource);
  for (const [backbone, src] of sources) out(`weights of ${backbone}: ${src}`);
  const kept = rows.filter((r) => r.modelRef);
  if (kept.length > 0) out(`models kept: ${kept.map((r) => r.trialId).join(', ')} (\`tlsweep export <trialId> <dir>\`)`);
  if (groups) out('\n' + groups);
  return rows;
}
