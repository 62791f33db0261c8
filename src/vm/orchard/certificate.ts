import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { MacvmError, messageOf } from '../../errors.js';

/*
 * The controller's pinned certificate (orchard.certificate, or an Orchard CLI context's): read,
 * and turned into what TLS verification needs, as Orchard's own client does.
 */

/** PEM text as is, else the path of a PEM file (relative to `cwd`, `~/` for the home dir). */
export async function readCertificate(value: string, cwd = process.cwd()): Promise<string> {
  if (value.includes('-----BEGIN')) return value;
  const path = resolve(cwd, value.replace(/^~(?=\/)/, homedir()));
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `orchard.certificate is neither PEM text nor a readable file (${path}: ${messageOf(error)}).`, { details: { key: 'orchard.certificate' } });
  }
}

/**
 * Orchard's client trusts only the pinned certificate and verifies the server name against its
 * first DNS name (pkg/client/client.go New: RootCAs = that certificate, ServerName = DNSNames[0]).
 */
export function certificateServerName(pem: string, origin: string): string | undefined {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch (error) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `${origin} is not a PEM certificate: ${messageOf(error)}.`, {
      hint: "Give the controller's certificate as `orchard context create` stores it (PEM, \"-----BEGIN CERTIFICATE-----\").",
      details: { key: origin },
    });
  }
  const names = (certificate.subjectAltName ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4));
  return names[0];
}

/** The SHA-256 fingerprint as Orchard prints it (internal/certificatefingerprint): "AB CD ...". */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replace(/:/g, ' ');
}
