// Checks the CRDs in deploy/crd/ without a cluster: fields agree with lib/rules/schema.ts, every field is
// described and bounded, and every preset in rules/ validates against the CRD schema and its CEL rules.
//
// No CEL engine runs here: each x-kubernetes-validations rule has a TypeScript reproduction in CEL_RULES,
// keyed by the rule's exact text, so a changed rule fails this test until its reproduction is updated.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse, parseAllDocuments } from "yaml";
import {
  REQUIREMENT_FIELDS,
  RULE_FIELDS,
  SELECTOR_FIELDS,
  SPEC_FIELDS,
  TOP_FIELDS,
  validateObject,
} from "../lib/rules/schema.ts";
import { hasErrors } from "../lib/rules/problem.ts";

const CRD_DIR = fileURLToPath(new URL("../deploy/crd/", import.meta.url));
const RULES_DIR = fileURLToPath(new URL("../rules/", import.meta.url));

type Json = Record<string, unknown>;

/** The subset of an OpenAPI v3 schema node that CRDs use here. */
interface Schema {
  type?: string;
  format?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  "x-kubernetes-list-type"?: string;
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-map-type"?: string;
  "x-kubernetes-validations"?: { rule: string; message?: string }[];
  "x-kubernetes-preserve-unknown-fields"?: boolean;
}

interface Crd {
  file: string;
  text: string;
  spec: {
    group: string;
    scope: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames?: string[];
      categories?: string[];
    };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: Json };
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string; priority?: number }[];
      schema: { openAPIV3Schema: Schema };
    }[];
  };
}

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function readCrd(file: string): Crd {
  const text = Deno.readTextFileSync(`${CRD_DIR}${file}`);
  // kubectl reads manifests as YAML 1.1 (a bare on is true): read them that way.
  return { file, text, ...(parse(text, { version: "1.1" }) as { spec: Crd["spec"] }) };
}

const KUSTOMIZATION = parse(Deno.readTextFileSync(`${CRD_DIR}kustomization.yaml`)) as { resources: string[] };
const CRDS = KUSTOMIZATION.resources.map(readCrd);

function crdOf(kind: string): Crd {
  const crd = CRDS.find((candidate) => candidate.spec.names.kind === kind);
  assert.ok(crd, `no CRD for kind ${kind}`);
  return crd;
}

function rootOf(crd: Crd): Schema {
  const version = crd.spec.versions[0];
  assert.ok(version);
  return version.schema.openAPIV3Schema;
}

function at(schema: Schema, ...path: string[]): Schema {
  let node = schema;
  for (const segment of path) {
    const next = segment === "[]" ? node.items : node.properties?.[segment];
    assert.ok(next, `no schema at ${path.join(".")}`);
    node = next;
  }
  return node;
}

/** Every schema node with its path (properties, items, additionalProperties). */
function* walk(schema: Schema, path = ""): Generator<[string, Schema]> {
  yield [path, schema];
  for (const [key, child] of Object.entries(schema.properties ?? {})) yield* walk(child, `${path}.${key}`);
  if (schema.items !== undefined) yield* walk(schema.items, `${path}[]`);
  if (isRecord(schema.additionalProperties)) yield* walk(schema.additionalProperties as Schema, `${path}{}`);
}

const EXPECTED: Record<string, { plural: string; scope: string; shortName: string; spec: ReadonlySet<string> }> = {
  ClusterImageRewrite: { plural: "clusterimagerewrites", scope: "Cluster", shortName: "cir", spec: SPEC_FIELDS },
  ImageRewrite: {
    plural: "imagerewrites",
    scope: "Namespaced",
    shortName: "ir",
    // Only a ClusterImageRewrite can list or select namespaces, or be enforced.
    spec: new Set(
      [...SPEC_FIELDS].filter((field) =>
        field !== "namespaces" && field !== "namespaceSelector" && field !== "enforced"
      ),
    ),
  },
};

function keys(schema: Schema): string[] {
  return Object.keys(schema.properties ?? {}).sort();
}

Deno.test("CRDs: names, scope, version, subresources and printer columns", async (t) => {
  assert.deepEqual(CRDS.map((crd) => crd.spec.names.kind).sort(), Object.keys(EXPECTED).sort());
  for (const crd of CRDS) {
    await t.step(crd.file, () => {
      const expected = EXPECTED[crd.spec.names.kind];
      assert.ok(expected);
      const { names } = crd.spec;
      assert.equal(
        (crd as unknown as { metadata: { name: string } }).metadata.name,
        `${expected.plural}.mirrorhook.dev`,
      );
      assert.equal(crd.file, `mirrorhook.dev_${expected.plural}.yaml`);
      assert.equal(crd.spec.group, "mirrorhook.dev");
      assert.equal(crd.spec.scope, expected.scope);
      assert.equal(names.plural, expected.plural);
      assert.equal(names.singular, names.kind.toLowerCase());
      assert.equal(names.listKind, `${names.kind}List`);
      assert.deepEqual(names.shortNames, [expected.shortName]);
      assert.deepEqual(names.categories, ["mirrorhook"]);
      assert.equal(crd.spec.versions.length, 1);
      const [version] = crd.spec.versions;
      assert.ok(version);
      assert.equal(version.name, "v1alpha1");
      assert.equal(version.served, true);
      assert.equal(version.storage, true);
      assert.deepEqual(version.subresources, { status: {} });
      const columns = Object.fromEntries((version.additionalPrinterColumns ?? []).map((c) => [c.name, c]));
      assert.deepEqual(columns["Priority"], {
        ...columns["Priority"],
        type: "integer",
        jsonPath: ".spec.priority",
      });
      assert.deepEqual(columns["Rules"], { ...columns["Rules"], type: "integer", jsonPath: ".status.rules" });
      assert.deepEqual(columns["Ready"], {
        ...columns["Ready"],
        type: "string",
        jsonPath: '.status.conditions[?(@.type=="Ready")].status',
      });
      assert.deepEqual(columns["Age"], { ...columns["Age"], type: "date", jsonPath: ".metadata.creationTimestamp" });
      // Every column reads a field the schema has, with a matching type.
      for (const column of version.additionalPrinterColumns ?? []) {
        if (column.jsonPath === ".metadata.creationTimestamp") continue;
        const path = column.jsonPath.replace(/\[\?\(@\.type=="[A-Za-z]+"\)\]/g, ".[]").split(".").slice(1);
        assert.equal(at(rootOf(crd), ...path).type, column.type, column.name);
      }
    });
  }
});

Deno.test("CRDs: fields are exactly those of lib/rules/schema.ts", async (t) => {
  for (const crd of CRDS) {
    await t.step(crd.file, () => {
      const root = rootOf(crd);
      const expected = EXPECTED[crd.spec.names.kind];
      assert.ok(expected);
      assert.deepEqual(keys(root), [...TOP_FIELDS].sort());
      assert.deepEqual(keys(at(root, "spec")), [...expected.spec].sort());
      assert.deepEqual(keys(at(root, "spec", "rules", "[]")), [...RULE_FIELDS].sort());
      for (const selector of ["podSelector", "namespaceSelector"].filter((field) => expected.spec.has(field))) {
        assert.deepEqual(keys(at(root, "spec", selector)), [...SELECTOR_FIELDS].sort());
        assert.deepEqual(keys(at(root, "spec", selector, "matchExpressions", "[]")), [...REQUIREMENT_FIELDS].sort());
      }
      assert.deepEqual(root.required, ["spec"]);
      assert.deepEqual(at(root, "spec").required, ["rules"]);
      assert.equal(at(root, "spec", "rules").minItems, 1);
      assert.deepEqual(at(root, "spec", "priority"), {
        ...at(root, "spec", "priority"),
        type: "integer",
        format: "int32",
        default: 0,
      });
    });
  }
});

Deno.test("CRDs: ImageRewrite is ClusterImageRewrite without namespaces, namespaceSelector and enforced", () => {
  const cluster = structuredClone(rootOf(crdOf("ClusterImageRewrite")));
  const namespaced = structuredClone(rootOf(crdOf("ImageRewrite")));
  delete cluster.properties?.["spec"]?.properties?.["namespaces"];
  delete cluster.properties?.["spec"]?.properties?.["namespaceSelector"];
  delete cluster.properties?.["spec"]?.properties?.["enforced"];
  delete cluster.description;
  delete namespaced.description;
  assert.deepEqual(namespaced, cluster);
  assert.deepEqual(
    crdOf("ImageRewrite").spec.versions[0]?.additionalPrinterColumns,
    crdOf("ClusterImageRewrite").spec.versions[0]?.additionalPrinterColumns,
  );
});

Deno.test("CRDs: structural, described, and bounded for the CEL cost budget", async (t) => {
  for (const crd of CRDS) {
    await t.step(crd.file, () => {
      for (const [path, node] of walk(rootOf(crd))) {
        assert.ok(node.type, `${path}: every node needs a type in a structural schema`);
        assert.notEqual(node["x-kubernetes-preserve-unknown-fields"], true, `${path}: unknown fields must be pruned`);
        assert.ok(
          !(node.properties !== undefined && node.additionalProperties !== undefined),
          `${path}: properties and additionalProperties exclude each other`,
        );
        if (path === ".metadata") {
          // The API server documents ObjectMeta itself; a CRD may only restrict name and generateName.
          assert.deepEqual(node, { type: "object" });
          continue;
        }
        assert.ok(node.description !== undefined && node.description.length > 10, `${path}: needs a description`);
        if (node.type === "string" && node.enum === undefined && node.format === undefined && path !== "") {
          if (!/^\.(apiVersion|kind)$/.test(path)) assert.ok(node.maxLength !== undefined, `${path}: needs maxLength`);
        }
        if (node.type === "array") assert.ok(node.maxItems !== undefined, `${path}: needs maxItems`);
        if (node.additionalProperties !== undefined) {
          assert.ok(node.maxProperties !== undefined, `${path}: needs maxProperties`);
        }
        for (const key of node.required ?? []) {
          assert.ok(node.properties?.[key], `${path}: required ${key} is not a property`);
        }
        if (node["x-kubernetes-list-type"] === "map") {
          for (const key of node["x-kubernetes-list-map-keys"] ?? []) {
            assert.ok(node.items?.required?.includes(key), `${path}: list map key ${key} must be required`);
          }
        }
        for (const validation of node["x-kubernetes-validations"] ?? []) {
          assert.ok(CEL_RULES.has(validation.rule), `${path}: no TypeScript reproduction of ${validation.rule}`);
          assert.ok(validation.message, `${path}: CEL rule needs a message`);
        }
      }
      assert.equal(at(rootOf(crd), "spec", "rules", "[]", "exact").maxLength, 512);
      assert.equal(at(rootOf(crd), "spec", "rules", "[]", "match").maxLength, 1024);
    });
  }
});

Deno.test("CRDs: `on` is a quoted key, and the files read the same as YAML 1.1 and 1.2", async (t) => {
  for (const crd of CRDS) {
    await t.step(crd.file, () => {
      assert.deepEqual(parse(crd.text, { version: "1.1" }), parse(crd.text, { version: "1.2" }));
      assert.ok(at(rootOf(crd), "spec", "rules", "[]", "on"));
      for (const line of crd.text.split("\n")) assert.doesNotMatch(line, /^\s*(- )?on:/, 'write "on": as the key');
      assert.match(at(rootOf(crd), "spec", "rules", "[]", "on").description ?? "", /"on": original/);
    });
  }
});

Deno.test("CRDs: enums accept exactly what lib/rules/schema.ts accepts", async (t) => {
  const root = rootOf(crdOf("ClusterImageRewrite"));
  const rule = (extra: Json) => ({ match: "^docker\\.io/(.*)$", replace: "cache.example.com/$1", ...extra });
  // Exists and DoesNotExist take no values.
  const requirement = (operator: unknown) => ({
    key: "env",
    operator,
    ...(operator === "Exists" || operator === "DoesNotExist" ? {} : { values: ["a"] }),
  });
  const cases: { field: string; schema: Schema; object: (value: unknown) => Json }[] = [
    {
      field: "rules[].on",
      schema: at(root, "spec", "rules", "[]", "on"),
      object: (on) => spec({ rules: [rule({ on })] }),
    },
    {
      field: "rules[].onMissing",
      schema: at(root, "spec", "rules", "[]", "onMissing"),
      object: (onMissing) => spec({ rules: [rule({ verify: true, onMissing })] }),
    },
    {
      field: "spec.onMissing",
      schema: at(root, "spec", "onMissing"),
      object: (onMissing) => spec({ verify: true, onMissing, rules: [rule({})] }),
    },
    {
      field: "matchExpressions[].operator",
      schema: at(root, "spec", "podSelector", "matchExpressions", "[]", "operator"),
      object: (operator) => spec({ podSelector: { matchExpressions: [requirement(operator)] }, rules: [rule({})] }),
    },
  ];
  for (const { field, schema, object } of cases) {
    await t.step(field, () => {
      assert.ok(schema.enum && schema.enum.length > 0);
      for (const value of schema.enum) {
        assert.deepEqual(errorPaths(validateObject(object(value)).problems), [], `${field} ${String(value)}`);
      }
      assert.ok(hasErrors(validateObject(object("bogus")).problems), `${field} bogus`);
    });
  }
});

function spec(value: Json, kind = "ClusterImageRewrite"): Json {
  return { apiVersion: "mirrorhook.dev/v1alpha1", kind, metadata: { name: "x" }, spec: value };
}

function errorPaths(problems: readonly { severity: string; path: string }[]): string[] {
  return problems.filter((problem) => problem.severity === "error").map((problem) => problem.path);
}

// --- CEL reproductions -----------------------------------------------------------------------------------

type CelRule = (self: Json) => boolean;

const CEL_RULES: ReadonlyMap<string, CelRule> = new Map<string, CelRule>([
  [
    "(has(self.exact) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.match) ? 1 : 0) == 1",
    (self) => ["exact", "prefix", "match"].filter((key) => self[key] !== undefined).length === 1,
  ],
  [
    "(has(self.keep) && self.keep ? 1 : 0) + (has(self.replace) ? 1 : 0) + (has(self.to) ? 1 : 0) == 1",
    (self) =>
      [self["keep"] === true, self["replace"] !== undefined, self["to"] !== undefined].filter(Boolean).length === 1,
  ],
  ["!has(self.on) || has(self.match)", (self) => self["on"] === undefined || self["match"] !== undefined],
  [
    "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
    (self) => {
      const values = self["values"];
      const size = Array.isArray(values) ? values.length : 0;
      return self["operator"] === "In" || self["operator"] === "NotIn" ? size > 0 : size === 0;
    },
  ],
]);

// --- A small structural-schema validator ------------------------------------------------------------------

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Validates a value as the API server would after decoding: types, formats, enums, required, bounds,
 * patterns, unknown properties (the server prunes them, or rejects them under strict field validation),
 * list-map key uniqueness and the CEL rules (through their reproductions). Returns `path: problem` lines.
 */
function validateSchema(value: unknown, schema: Schema, path = ""): string[] {
  const errors: string[] = [];
  const fail = (problem: string) => errors.push(`${path === "" ? "<root>" : path}: ${problem}`);
  if (path === ".metadata") return isRecord(value) ? [] : [`${path}: expected an object`];
  switch (schema.type) {
    case "object": {
      if (!isRecord(value)) return [`${path}: expected an object`];
      for (const key of schema.required ?? []) if (value[key] === undefined) fail(`${key} is required`);
      if (schema.maxProperties !== undefined && Object.keys(value).length > schema.maxProperties) {
        fail(`more than ${schema.maxProperties} properties`);
      }
      for (const [key, item] of Object.entries(value)) {
        const child = schema.properties?.[key] ??
          (isRecord(schema.additionalProperties) ? schema.additionalProperties as Schema : undefined);
        if (child === undefined) fail(`unknown field ${JSON.stringify(key)}`);
        else errors.push(...validateSchema(item, child, `${path}.${key}`));
      }
      break;
    }
    case "array": {
      if (!Array.isArray(value)) return [`${path}: expected a list`];
      if (schema.minItems !== undefined && value.length < schema.minItems) fail(`fewer than ${schema.minItems} items`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) fail(`more than ${schema.maxItems} items`);
      value.forEach((item, index) => {
        if (schema.items !== undefined) errors.push(...validateSchema(item, schema.items, `${path}[${index}]`));
      });
      if (schema["x-kubernetes-list-type"] === "map") {
        const seen = new Set<string>();
        for (const item of value) {
          const key = JSON.stringify((schema["x-kubernetes-list-map-keys"] ?? []).map((k) => (item as Json)[k]));
          if (seen.has(key)) fail(`duplicate list-map key ${key}`);
          seen.add(key);
        }
      }
      break;
    }
    case "string":
      if (typeof value !== "string") return [`${path}: expected a string`];
      if (schema.minLength !== undefined && value.length < schema.minLength) fail(`shorter than ${schema.minLength}`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) fail(`longer than ${schema.maxLength}`);
      if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) {
        fail(`does not match ${schema.pattern}`);
      }
      if (schema.format === "date-time" && !DATE_TIME.test(value)) fail("not a date-time");
      break;
    case "integer": {
      if (typeof value !== "number" || !Number.isInteger(value)) return [`${path}: expected an integer`];
      const [min, max] = schema.format === "int32" ? [-(2 ** 31), 2 ** 31 - 1] : [-(2 ** 63), 2 ** 63 - 1];
      if (value < (schema.minimum ?? min) || value > (schema.maximum ?? max)) fail(`out of range`);
      break;
    }
    case "boolean":
      if (typeof value !== "boolean") return [`${path}: expected a boolean`];
      break;
    default:
      fail(`schema type ${String(schema.type)} is not handled`);
  }
  if (schema.enum !== undefined && !schema.enum.includes(value)) fail(`not one of ${JSON.stringify(schema.enum)}`);
  for (const validation of schema["x-kubernetes-validations"] ?? []) {
    const rule = CEL_RULES.get(validation.rule);
    if (rule === undefined) fail(`no reproduction of CEL rule ${validation.rule}`);
    else if (!rule(value as Json)) fail(validation.message ?? validation.rule);
  }
  return errors;
}

/** What the CRD says about an object: schema errors, or none. */
function crdErrors(object: unknown): string[] {
  const kind = isRecord(object) ? object["kind"] : undefined;
  const crd = CRDS.find((candidate) => candidate.spec.names.kind === kind);
  if (crd === undefined) return [`no CRD for kind ${JSON.stringify(kind)}`];
  return validateSchema(object, rootOf(crd));
}

Deno.test("presets in rules/ validate against the CRDs (read as kubectl reads them)", async (t) => {
  const files = [...Deno.readDirSync(RULES_DIR)]
    .filter((entry) => entry.isFile && entry.name.endsWith(".yaml"))
    .map((entry) => entry.name)
    .sort();
  assert.ok(files.length > 0);
  for (const file of files) {
    await t.step(file, () => {
      const text = Deno.readTextFileSync(`${RULES_DIR}${file}`);
      const asKubectl = parseAllDocuments(text, { version: "1.1" }) as unknown as { toJS(): unknown }[];
      const asLoader = parseAllDocuments(text) as unknown as { toJS(): unknown }[];
      const objects = asKubectl.map((doc) => doc.toJS()).filter((value) => value !== null);
      assert.ok(objects.length > 0);
      assert.deepEqual(objects, asLoader.map((doc) => doc.toJS()).filter((value) => value !== null));
      for (const object of objects) {
        assert.deepEqual(crdErrors(object), []);
        assert.deepEqual(errorPaths(validateObject(object).problems), []);
      }
    });
  }
});

const RULE = { prefix: "docker.io", replace: "cache.example.com/hub" };

/** Objects the CRD can judge alone: it and lib/rules/schema.ts must agree on each. */
const AGREEMENT: { name: string; object: Json; valid: boolean }[] = [
  { name: "a minimal ClusterImageRewrite", object: spec({ rules: [RULE] }), valid: true },
  {
    name: "an ImageRewrite with every field",
    object: {
      ...spec({
        priority: -5,
        verify: true,
        onMissing: "rewrite",
        podSelector: { matchLabels: { app: "web" }, matchExpressions: [{ key: "tier", operator: "Exists" }] },
        rules: [
          { exact: "nginx:1", replace: "a.io/nginx:1", verify: false },
          { prefix: "quay.io", keep: true },
          { match: "^ghcr\\.io/(.*)$", replace: "cache.example.com/$1", on: "original", onMissing: "keep" },
        ],
      }, "ImageRewrite"),
      metadata: { name: "x", namespace: "team" },
    },
    valid: true,
  },
  { name: "no rules", object: spec({ rules: [] }), valid: false },
  { name: "no spec.rules", object: spec({}), valid: false },
  { name: "exact and prefix", object: spec({ rules: [{ ...RULE, exact: "nginx" }] }), valid: false },
  { name: "no exact, prefix or match", object: spec({ rules: [{ replace: "a.io/b" }] }), valid: false },
  { name: "keep and replace", object: spec({ rules: [{ ...RULE, keep: true }] }), valid: false },
  { name: "neither keep nor replace", object: spec({ rules: [{ prefix: "docker.io" }] }), valid: false },
  { name: "keep false and no replace", object: spec({ rules: [{ prefix: "docker.io", keep: false }] }), valid: false },
  { name: "keep false with replace", object: spec({ rules: [{ ...RULE, keep: false }] }), valid: true },
  {
    name: "ordered targets",
    object: spec({ rules: [{ prefix: "docker.io", to: ["a.io/hub", "b.io/hub"] }] }),
    valid: true,
  },
  { name: "to and replace", object: spec({ rules: [{ ...RULE, to: ["a.io/hub"] }] }), valid: false },
  { name: "on with prefix", object: spec({ rules: [{ ...RULE, on: "original" }] }), valid: false },
  {
    name: "on with match",
    object: spec({ rules: [{ match: "^a$", replace: "b.io/c", on: "original" }] }),
    valid: true,
  },
  {
    name: "on: true (YAML 1.1 bare on)",
    object: spec({ rules: [{ match: "^a$", replace: "b.io/c", on: true }] }),
    valid: false,
  },
  { name: "an unknown rule field", object: spec({ rules: [{ ...RULE, regex: "x" }] }), valid: false },
  { name: "an unknown spec field", object: spec({ rules: [RULE], mirrors: [] }), valid: false },
  { name: "an empty prefix", object: spec({ rules: [{ prefix: "", replace: "a.io/b" }] }), valid: false },
  { name: "priority 2^31", object: spec({ priority: 2 ** 31, rules: [RULE] }), valid: false },
  { name: "priority 1.5", object: spec({ priority: 1.5, rules: [RULE] }), valid: false },
  { name: 'keep: "true"', object: spec({ rules: [{ prefix: "a.io", keep: "true" }] }), valid: false },
  { name: "namespaces with an invalid name", object: spec({ namespaces: ["Team"], rules: [RULE] }), valid: false },
  {
    name: "ImageRewrite with namespaces",
    object: { ...spec({ namespaces: ["a"], rules: [RULE] }, "ImageRewrite"), metadata: { name: "x", namespace: "a" } },
    valid: false,
  },
  {
    name: "In without values",
    object: spec({ podSelector: { matchExpressions: [{ key: "a", operator: "In" }] }, rules: [RULE] }),
    valid: false,
  },
  {
    name: "Exists with values",
    object: spec({
      podSelector: { matchExpressions: [{ key: "a", operator: "Exists", values: ["b"] }] },
      rules: [RULE],
    }),
    valid: false,
  },
  {
    name: "Exists with empty values",
    object: spec({ podSelector: { matchExpressions: [{ key: "a", operator: "Exists", values: [] }] }, rules: [RULE] }),
    valid: true,
  },
  {
    name: "an invalid label value",
    object: spec({ namespaceSelector: { matchLabels: { env: "not valid" } }, rules: [RULE] }),
    valid: false,
  },
  {
    name: "an invalid label key",
    object: spec({ podSelector: { matchExpressions: [{ key: "-a", operator: "Exists" }] }, rules: [RULE] }),
    valid: false,
  },
  {
    name: "a status as mirrorhook writes it",
    object: {
      ...spec({ rules: [RULE] }),
      status: {
        observedGeneration: 3,
        rules: 1,
        conditions: [{
          type: "Ready",
          status: "True",
          reason: "Compiled",
          message: "",
          lastTransitionTime: "2025-01-01T00:00:00Z",
          observedGeneration: 3,
        }],
      },
    },
    valid: true,
  },
];

Deno.test("CRDs and lib/rules/schema.ts agree on what the CRD can judge", async (t) => {
  for (const row of AGREEMENT) {
    await t.step(row.name, () => {
      assert.equal(crdErrors(row.object).length === 0, row.valid, `CRD: ${crdErrors(row.object).join("; ")}`);
      assert.equal(!hasErrors(validateObject(row.object).problems), row.valid, "lib/rules/schema.ts");
    });
  }
});

Deno.test("the CRD validator rejects a status it should", async (t) => {
  const base = spec({ rules: [RULE] });
  const condition = {
    type: "Ready",
    status: "True",
    reason: "Compiled",
    message: "",
    lastTransitionTime: "2025-01-01T00:00:00Z",
  };
  const rows: { name: string; status: Json }[] = [
    { name: "status Yes", status: { conditions: [{ ...condition, status: "Yes" }] } },
    { name: "no reason", status: { conditions: [{ ...condition, reason: undefined }] } },
    { name: "a duplicate Ready", status: { conditions: [condition, condition] } },
    { name: "a bad lastTransitionTime", status: { conditions: [{ ...condition, lastTransitionTime: "yesterday" }] } },
    { name: "negative rules", status: { rules: -1 } },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      // Dropping undefined fields, as JSON does.
      const status = JSON.parse(JSON.stringify(row.status));
      assert.notDeepEqual(crdErrors({ ...base, status }), []);
    });
  }
});
