import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM files of a throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate. */
export interface TestPki {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  read(file: string): Buffer;
  remove(): void;
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

/** Makes a CA and signs a leaf with it (EC P-256: fast to generate). */
function leaf(dir: string, name: string, ca: string, subject: string, ext: string): void {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
}

function makeCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`], dir);
}

/** Generates the PKI with `openssl` in a temp dir; `other` adds a second, untrusted CA's client certificate. */
export function makeTestPki(): TestPki & { otherClientCertFile: string; otherClientKeyFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tlsweep-pki-'));
  makeCa(dir, 'ca');
  leaf(dir, 'server', 'ca', '/CN=tlsweep-coordinator', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf(dir, 'client', 'ca', '/CN=tlsweep-worker', 'extendedKeyUsage=clientAuth\n');
  makeCa(dir, 'other-ca');
  leaf(dir, 'other-client', 'other-ca', '/CN=intruder', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    serverCertFile: join(dir, 'server.crt'),
    serverKeyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
    otherClientCertFile: join(dir, 'other-client.crt'),
    otherClientKeyFile: join(dir, 'other-client.key'),
    read: (f) => readFileSync(f),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
