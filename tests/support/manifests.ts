// Kubernetes manifests in tests: read as kubectl reads them, and checked against the Kubernetes schemas.

import assert from "node:assert/strict";
import * as certManagerV1 from "@kubernetes-models/cert-manager/cert-manager.io/v1";
import * as admissionregistrationV1 from "kubernetes-models/admissionregistration.k8s.io/v1";
import * as apiextensionsV1 from "kubernetes-models/apiextensions.k8s.io/v1";
import * as appsV1 from "kubernetes-models/apps/v1";
import * as policyV1 from "kubernetes-models/policy/v1";
import * as rbacV1 from "kubernetes-models/rbac.authorization.k8s.io/v1";
import * as coreV1 from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";

export type Json = Record<string, unknown>;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** All documents of a YAML text, read as kubectl reads them (YAML 1.1), empty documents skipped. */
export function parseManifests(text: string, source: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const document of parseAllDocuments(text, { version: "1.1" })) {
    assert.deepEqual(document.errors, [], `${source}: YAML errors`);
    const value: unknown = document.toJS();
    if (value === null || value === undefined) continue;
    assert.ok(isRecord(value), `${source}: a document is not an object`);
    assert.equal(typeof value["apiVersion"], "string", `${source}: apiVersion`);
    assert.equal(typeof value["kind"], "string", `${source}: kind`);
    assert.ok(isRecord(value["metadata"]) && typeof value["metadata"]["name"] === "string", `${source}: metadata.name`);
    objects.push(value as K8sObject);
  }
  return objects;
}

type ModelClass = new (data: unknown) => { validate(): void };

/** kubernetes-models modules by apiVersion; every kind deploy/ uses must be found here. */
const MODELS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  "v1": coreV1,
  "apps/v1": appsV1,
  "policy/v1": policyV1,
  "rbac.authorization.k8s.io/v1": rbacV1,
  "admissionregistration.k8s.io/v1": admissionregistrationV1,
  "apiextensions.k8s.io/v1": apiextensionsV1,
  "cert-manager.io/v1": certManagerV1,
};

/** Why `object` does not validate against its kind's JSON schema (or has no schema here); undefined when it does. */
export function schemaErrors(object: K8sObject): string | undefined {
  const model = MODELS[object.apiVersion]?.[object.kind];
  if (typeof model !== "function") return `no schema for ${object.apiVersion} ${object.kind}`;
  try {
    new (model as ModelClass)(structuredClone(object)).validate();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
