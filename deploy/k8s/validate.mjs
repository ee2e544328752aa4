// Validates rendered Kubernetes manifests (a multi-document YAML stream, as
// `kustomize build` prints it) against the Kubernetes API schemas.
//
// The schemas are those of kubernetes-models (pinned in package.json), which
// compiles the Kubernetes OpenAPI definitions into ajv validators: types,
// formats, enums and required fields are checked there, not here. This script
// only maps each document's apiVersion/kind to its model.
//
// Usage: node validate.mjs FILE...   Exit 0: every document valid; 1: some
// document invalid or of an unknown kind (each error printed on stderr);
// 2: usage or unreadable file.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

async function modelFor(apiVersion, kind) {
  // "apps/v1" is at kubernetes-models/apps/v1, the core "v1" at
  // kubernetes-models/v1.
  const spec = `kubernetes-models/${apiVersion}`;
  let mod;
  try {
    mod = await import(spec);
  } catch {
    return null;
  }
  return mod[kind] ?? null;
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node validate.mjs FILE...");
    return 2;
  }
  let failures = 0;
  let checked = 0;
  for (const file of files) {
    let text;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      console.error(`${file}: ${e.message}`);
      return 2;
    }
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) {
        console.error(`${file}: YAML: ${doc.errors[0].message}`);
        failures++;
        continue;
      }
      const obj = doc.toJS();
      if (obj === null) continue;
      const where = `${file}: ${obj.kind}/${obj.metadata?.name}`;
      const Model = await modelFor(String(obj.apiVersion), String(obj.kind));
      if (Model === null) {
        console.error(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
        failures++;
        continue;
      }
      try {
        new Model(obj).validate();
        checked++;
      } catch (e) {
        console.error(`${where}: INVALID: ${e.message}`);
        failures++;
      }
    }
  }
  console.log(`validated ${checked} document(s), ${failures} invalid`);
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
