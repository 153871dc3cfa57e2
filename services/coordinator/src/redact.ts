/**
 * Credentials that ride in URLs (a weights URL with `user:pass@` or a
 * signed `?token=…`) must reach the worker that downloads the file but
 * never a reader of the leaderboard, the dashboard or the CLI. Everything
 * the coordinator shows passes through here; stored records keep the full
 * URL, so redaction loses nothing.
 */

const MASK = '***';
// Any scheme://… run up to whitespace or a quote/bracket that ends it in JSON, YAML or prose.
const URL_RE = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;

/** `https://u:p@host/w.json?sig=abc#t=1` → `https://***@host/w.json?sig=***#t=***`. Text without a URL is returned as is. */
export function redactUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(url);
  if (!m) return url;
  const [, scheme, authority, path, query, fragment] = m;
  const at = authority.lastIndexOf('@');
  const host = at >= 0 ? `${MASK}@${authority.slice(at + 1)}` : authority;
  return `${scheme}${host}${path}${query ? `?${maskParams(query.slice(1))}` : ''}${fragment ? `#${maskParams(fragment.slice(1))}` : ''}`;
}

/** Every URL inside `text` (an error message, a JSON document) redacted. */
export function redactSecrets(text: string): string {
  if (!text.includes('://')) return text;
  // Punctuation that ends a sentence (`… model.json: 404`) is not part of the URL.
  return text.replace(URL_RE, (m) => {
    const tail = /[.,:;!?)\]}]+$/.exec(m)?.[0] ?? '';
    return redactUrl(m.slice(0, m.length - tail.length)) + tail;
  });
}

/** A JSON-able value with every URL in its strings redacted (a trial config, a sweep spec). */
export function redactDeep<T>(value: T): T {
  const json = JSON.stringify(value);
  if (json === undefined || !json.includes('://')) return value;
  return JSON.parse(redactSecrets(json)) as T;
}

function maskParams(s: string): string {
  if (!s) return s;
  return s.split('&').map((p) => {
    const eq = p.indexOf('=');
    return eq >= 0 ? `${p.slice(0, eq)}=${MASK}` : MASK;
  }).join('&');
}
