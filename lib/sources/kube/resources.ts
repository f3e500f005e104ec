// The API resources the cluster source reads and writes, their paths, and reading the objects the API returns.

import { FLEMZORD_GROUP, FLEMZORD_KIND } from "../../compat/flemzord.ts";
import { API_VERSION, describeObject } from "../../rules/schema.ts";
import { isRecord, type Json } from "../../util/json.ts";

/** A JSON object as the API sends it. */

/** One resource type: where it is served and what its objects are called. */
export interface Resource {
  readonly plural: string;
  readonly kind: string;
  readonly apiVersion: string;
  readonly namespaced: boolean;
  /** `/apis/group/version` or `/api/v1`. */
  readonly base: string;
}

/** Our namespaced rule objects. */
export const IMAGE_REWRITES: Resource = {
  plural: "imagerewrites",
  kind: "ImageRewrite",
  apiVersion: API_VERSION,
  namespaced: true,
  base: `/apis/${API_VERSION}`,
};
/** Our cluster-scoped rule objects. */
export const CLUSTER_IMAGE_REWRITES: Resource = {
  plural: "clusterimagerewrites",
  kind: "ClusterImageRewrite",
  apiVersion: API_VERSION,
  namespaced: false,
  base: `/apis/${API_VERSION}`,
};
/** Namespaces, read for their labels (`namespaceSelector`). */
export const NAMESPACES: Resource = {
  plural: "namespaces",
  kind: "Namespace",
  apiVersion: "v1",
  namespaced: false,
  base: "/api/v1",
};
/** mutating-registry-webhook's rule objects: read as rules when their CRD is installed, never written. */
export const REGISTRY_REWRITE_RULES: Resource = {
  plural: "registryrewriterules",
  kind: FLEMZORD_KIND,
  apiVersion: `${FLEMZORD_GROUP}/v1alpha1`,
  namespaced: false,
  base: `/apis/${FLEMZORD_GROUP}/v1alpha1`,
};

/** `imagerewrites.mirrorhook.dev` */
export function resourceName(resource: Resource): string {
  const group = resource.base.startsWith("/apis/") ? resource.base.split("/")[2] : undefined;
  return group === undefined ? resource.plural : `${resource.plural}.${group}`;
}

/** `/apis/mirrorhook.dev/v1alpha1/imagerewrites`: every object of the resource, in all namespaces. */
export function collectionPath(resource: Resource): string {
  return `${resource.base}/${resource.plural}`;
}

/** The path of one object. */
export function objectPath(resource: Resource, namespace: string, name: string): string {
  const tail = `${resource.plural}/${encodeURIComponent(name)}`;
  return resource.namespaced
    ? `${resource.base}/namespaces/${encodeURIComponent(namespace)}/${tail}`
    : `${resource.base}/${tail}`;
}

/** `metadata` of an API object, or an empty object. */
export function metadataOf(object: unknown): Json {
  return isRecord(object) && isRecord(object["metadata"]) ? object["metadata"] : {};
}

/** A string field of a JSON object, or undefined. */
export function stringField(record: Json, field: string): string | undefined {
  const value = record[field];
  return typeof value === "string" ? value : undefined;
}

/** `metadata.resourceVersion`, or undefined. */
export function resourceVersionOf(object: unknown): string | undefined {
  return stringField(metadataOf(object), "resourceVersion");
}

/** `metadata.generation`, or undefined (built-in types have none). */
export function generationOf(object: unknown): number | undefined {
  const value = metadataOf(object)["generation"];
  return typeof value === "number" ? value : undefined;
}

/** Key of an object within one resource: `namespace/name`. */
export function itemKey(object: unknown): string {
  const metadata = metadataOf(object);
  return `${stringField(metadata, "namespace") ?? ""}/${stringField(metadata, "name") ?? ""}`;
}

/** Key across kinds: `Kind/namespace/name`. */
export function objectKey(kind: string, object: unknown): string {
  return `${kind}/${itemKey(object)}`;
}

/** `ImageRewrite "team/hub"`: how an object is named in messages. */
export function labelOf(object: unknown): string {
  const kind = isRecord(object) && typeof object["kind"] === "string" ? object["kind"] : "object";
  const metadata = metadataOf(object);
  const namespace = stringField(metadata, "namespace");
  return describeObject({
    kind,
    metadata: { name: stringField(metadata, "name") ?? "", ...(namespace === undefined ? {} : { namespace }) },
  });
}
