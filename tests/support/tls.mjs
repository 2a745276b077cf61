// Test helper: a throwaway CA and a localhost certificate it signed (openssl, a test
// prerequisite), for a bridge run with --tls-cert/--tls-key.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Resolves to { cert, key, ca (PEM text) }. */
export function makeCertificate() {
  const dir = mkdtempSync(join(tmpdir(), "ferry-tls-"));
  const p = (n) => join(dir, n);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const run = (args) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  run(["req", "-x509", ...ec, "-days", "1", "-subj", "/CN=ferry test CA", "-keyout", p("ca.key"), "-out", p("ca.crt")]);
  run(["req", ...ec, "-subj", "/CN=localhost", "-keyout", p("leaf.key"), "-out", p("leaf.csr")]);
  writeFileSync(p("leaf.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
  run(["x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial",
    "-days", "1", "-extfile", p("leaf.ext"), "-out", p("leaf.crt")]);
  return { cert: p("leaf.crt"), key: p("leaf.key"), ca: readFileSync(p("ca.crt"), "utf8") };
}
