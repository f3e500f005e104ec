// prom-client's metric classes, loaded without its index module: the index also loads the push gateway, cluster
// aggregation, summaries and every default metric, and through one of them @opentelemetry/api, none of which mirrorhook
// uses (~1.4 MB of JavaScript heap in every server). Same classes, same types.

import type * as Prom from "prom-client";
import CounterClass from "prom-client/lib/counter.js";
import GaugeClass from "prom-client/lib/gauge.js";
import HistogramClass from "prom-client/lib/histogram.js";
import RegistryClass from "prom-client/lib/registry.js";

/** prom-client's `Registry`. */
export const Registry = RegistryClass as typeof Prom.Registry;
/** prom-client's `Registry`. */
export type Registry = Prom.Registry;
/** prom-client's `Counter`. */
export const Counter = CounterClass as typeof Prom.Counter;
/** prom-client's `Counter`. */
export type Counter<T extends string = string> = Prom.Counter<T>;
/** prom-client's `Gauge`. */
export const Gauge = GaugeClass as typeof Prom.Gauge;
/** prom-client's `Gauge`. */
export type Gauge<T extends string = string> = Prom.Gauge<T>;
/** prom-client's `Histogram`. */
export const Histogram = HistogramClass as typeof Prom.Histogram;
/** prom-client's `Histogram`. */
export type Histogram<T extends string = string> = Prom.Histogram<T>;
