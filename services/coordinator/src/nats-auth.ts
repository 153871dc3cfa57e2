import { credsAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';

/** How a service logs in to NATS: user and password, or a `.creds` file (JWT + nkey seed). */
export type NatsAuth = { user: string; pass: string } | { creds: Uint8Array };

/** The connect() options for `auth` (none for null: an open dev server). */
export function natsAuthOptions(auth: NatsAuth | null | undefined): Partial<ConnectionOptions> {
  if (!auth) return {};
  if ('creds' in auth) return { authenticator: credsAuthenticator(auth.creds) };
  return { user: auth.user, pass: auth.pass };
}
