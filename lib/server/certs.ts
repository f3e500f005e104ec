// Certificate helpers: read notAfter from a PEM, and mint a throwaway CA + serving certificate (--dev, tests).

import { X509Certificate } from "node:crypto";
import type * as X509 from "@peculiar/x509";

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** A CA and a serving certificate it signed, all PEM. */
export interface CertificateChain {
  readonly caCert: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
  readonly notAfter: Date;
}

/** Options for {@linkcode mintCertificates}. */
export interface MintOptions {
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly validDays?: number;
  /** Reuse a CA (to mint a rotated serving certificate under the same trust). */
  readonly ca?: { readonly cert: string; readonly key: string };
  readonly commonName?: string;
}

function toPem(label: string, der: ArrayBuffer): string {
  const base64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${base64.match(/.{1,64}/g)?.join("\n")}\n-----END ${label}-----\n`;
}

function fromPem(pem: string): ArrayBuffer {
  const base64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return bytes.buffer;
}

/** notAfter of the first certificate in a PEM bundle; throws a clear error when it is not one. */
export function certificateNotAfter(pem: string): Date {
  try {
    return new X509Certificate(pem).validToDate;
  } catch (error) {
    throw new Error(`Cannot read certificate: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** notBefore and notAfter of the first certificate of a PEM; throws with a clear message when it cannot be read. */
export function certificateValidity(pem: string): { notBefore: Date; notAfter: Date } {
  try {
    const certificate = new X509Certificate(pem);
    return { notBefore: certificate.validFromDate, notAfter: certificate.validToDate };
  } catch (error) {
    throw new Error(`Cannot read certificate: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Mints a CA (or reuses one) and a serving certificate for localhost and 127.0.0.1 by default. */
export async function mintCertificates(options: MintOptions = {}): Promise<CertificateChain> {
  // Loaded here, not with the module: only --dev and tests mint, and @peculiar/x509 costs ~8 MB resident.
  await import("reflect-metadata");
  const x509 = await import("@peculiar/x509");
  const crypto = globalThis.crypto;
  x509.cryptoProvider.set(crypto);
  const now = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + (options.validDays ?? 7) * 86_400_000);
  let caCertPem: string;
  let caKeyPem: string;
  let caKeys: CryptoKeyPair;
  let caCert: X509.X509Certificate;
  if (options.ca === undefined) {
    caKeys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]) as CryptoKeyPair;
    caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: "CN=mirrorhook throwaway CA",
      notBefore: now,
      notAfter,
      keys: caKeys,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
      ],
    });
    caCertPem = caCert.toString("pem") + "\n";
    caKeyPem = toPem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", caKeys.privateKey));
  } else {
    caCert = new x509.X509Certificate(options.ca.cert);
    const privateKey = await crypto.subtle.importKey("pkcs8", fromPem(options.ca.key), ALGORITHM, true, ["sign"]);
    caKeys = { privateKey, publicKey: await caCert.publicKey.export(ALGORITHM, ["verify"]) };
    caCertPem = options.ca.cert;
    caKeyPem = options.ca.key;
  }
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]) as CryptoKeyPair;
  const names = [
    ...(options.dnsNames ?? ["localhost"]).map((value) => ({ type: "dns" as const, value })),
    ...(options.ipAddresses ?? ["127.0.0.1"]).map((value) => ({ type: "ip" as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${options.commonName ?? "mirrorhook"}`,
    issuer: caCert.subject,
    notBefore: now,
    notAfter,
    signingKey: caKeys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return {
    caCert: caCertPem,
    caKey: caKeyPem,
    cert: cert.toString("pem") + "\n",
    key: toPem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey)),
    notAfter: cert.notAfter,
  };
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
