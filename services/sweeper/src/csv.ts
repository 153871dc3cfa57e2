/**
 * RFC 4180 CSV: fields containing a comma, a double quote, CR or LF are
 * quoted, quotes inside are doubled, records end with CRLF.
 */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A header record and one record per row, each ending in CRLF. */
export function toCsv(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  return [headers, ...rows].map((r) => r.map(csvField).join(',') + '\r\n').join('');
}
