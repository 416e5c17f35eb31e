import { useState, type FormEvent } from "react";
import { CollectionPage, SaveBar, type EditorProps } from "../components/CollectionPage";
import { AUTO_ASSIGN_CATEGORIES, PERIODS, propertiesOf, type PlanDefinition, type PropertyDefinition } from "../components/config";
import { Field, FieldError, FormErrorsScope, useFormErrors } from "../components/FieldError";
import { CheckboxList, SlugInput } from "../components/formInputs";
import { useRoute } from "../components/router";
import { collector, numberProblem, parseList, slugProblem } from "../components/validation";

/**
 * One cell of the feature matrix: what this plan sets a property to, as the form edits it. `mode` "unset" leaves the
 * property to other plans (or its fallback).
 */
interface Cell {
  mode: "unset" | "on" | "off" | "metered" | "true" | "false" | "value" | "credits";
  text: string;
  limit: string;
  period: string;
  uniqueResources: boolean;
  overage: "" | "cap" | "overflow";
  stripeMeterEvent: string;
  amount: string;
  carryOver: string;
}

const EMPTY: Cell = { mode: "unset", text: "", limit: "", period: "month", uniqueResources: false, overage: "", stripeMeterEvent: "", amount: "", carryOver: "" };

function cellOf(property: PropertyDefinition, value: unknown): Cell {
  if (value === undefined) return EMPTY;
  if (typeof value === "object" && value !== null && "metered" in value) {
    const metered = (value as { metered: { limit?: number; period?: string; uniqueResources?: boolean; overage?: "cap" | "overflow"; stripeMeterEvent?: string } }).metered;
    return {
      ...EMPTY,
      mode: "metered",
      limit: metered.limit === undefined ? "" : String(metered.limit),
      period: metered.period ?? "month",
      uniqueResources: metered.uniqueResources ?? false,
      overage: metered.overage ?? "",
      stripeMeterEvent: metered.stripeMeterEvent ?? "",
    };
  }
  if (typeof value === "object" && value !== null && "credits" in value) {
    const credits = (value as { credits: { amount?: number; period?: string; carryOver?: number } }).credits;
    return { ...EMPTY, mode: "credits", amount: String(credits.amount ?? ""), period: credits.period ?? "month", carryOver: credits.carryOver === undefined ? "" : String(credits.carryOver) };
  }
  if (property.type === "enabled") return { ...EMPTY, mode: value === true || value === "on" ? "on" : "off" };
  if (typeof value === "boolean") return { ...EMPTY, mode: value ? "true" : "false" };
  return { ...EMPTY, mode: "value", text: String(value) };
}

/** The value sent for a cell, or undefined when unset; problems are recorded at `path`. */
function valueOf(property: PropertyDefinition, cell: Cell, path: string, check: ReturnType<typeof collector>["check"]): unknown {
  switch (cell.mode) {
    case "unset":
      return undefined;
    case "on":
    case "off":
      return cell.mode;
    case "true":
    case "false":
      return cell.mode === "true";
    case "metered": {
      check(`${path}`, numberProblem(cell.limit, { required: true, integer: true, min: 0 }) && `limit ${numberProblem(cell.limit, { required: true, integer: true, min: 0 })}`);
      if (cell.stripeMeterEvent && cell.overage !== "overflow") check(path, "a Stripe meter event needs overage: overflow");
      return {
        metered: {
          limit: Number(cell.limit),
          period: cell.period,
          ...(cell.uniqueResources ? { uniqueResources: true } : {}),
          ...(cell.overage ? { overage: cell.overage } : {}),
          ...(cell.stripeMeterEvent ? { stripeMeterEvent: cell.stripeMeterEvent } : {}),
        },
      };
    }
    case "credits": {
      const amountProblem = numberProblem(cell.amount, { required: true, integer: true, min: 0 });
      check(path, amountProblem && `amount ${amountProblem}`);
      const carryProblem = numberProblem(cell.carryOver, { integer: true, min: 0 });
      check(path, carryProblem && `carry-over ${carryProblem}`);
      return { credits: { amount: Number(cell.amount), period: cell.period, ...(cell.carryOver.trim() ? { carryOver: Number(cell.carryOver) } : {}) } };
    }
    case "value":
      if (property.type === "number") {
        check(path, numberProblem(cell.text, { required: true }));
        return Number(cell.text);
      }
      if (property.values && !property.values.includes(cell.text)) check(path, `must be one of ${property.values.join(", ")}`);
      return cell.text;
  }
}

function PeriodSelect({ value, onChange, testId }: { value: string; onChange(value: string): void; testId: string }) {
  return (
    <select value={value} onChange={(event) => onChange(event.target.value)} data-testid={testId} aria-label="Period">
      {PERIODS.map((period) => (
        <option key={period}>{period}</option>
      ))}
    </select>
  );
}

function CellEditor({ property, cell, onChange, testId }: { property: PropertyDefinition; cell: Cell; onChange(cell: Cell): void; testId: string }) {
  const set = (change: Partial<Cell>) => onChange({ ...cell, ...change });
  const modes: [Cell["mode"], string][] =
    property.type === "enabled"
      ? [["unset", "—"], ["on", "on"], ["off", "off"], ["metered", "metered"]]
      : property.type === "boolean"
        ? [["unset", "—"], ["true", "true"], ["false", "false"]]
        : property.type === "credits"
          ? [["unset", "—"], ["credits", "allowance"]]
          : [["unset", "—"], ["value", "set"]];
  return (
    <div className="cell-editor">
      {property.type === "string" && property.values ? (
        <select
          value={cell.mode === "unset" ? "" : cell.text}
          onChange={(event) => set(event.target.value === "" ? { mode: "unset", text: "" } : { mode: "value", text: event.target.value })}
          data-testid={testId}
          aria-label="Value"
        >
          <option value="">—</option>
          {property.values.map((value) => (
            <option key={value}>{value}</option>
          ))}
        </select>
      ) : property.type === "number" || property.type === "string" ? (
        <input
          value={cell.mode === "unset" ? "" : cell.text}
          placeholder="—"
          inputMode={property.type === "number" ? "decimal" : undefined}
          onChange={(event) => set(event.target.value === "" ? { mode: "unset", text: "" } : { mode: "value", text: event.target.value })}
          data-testid={testId}
          aria-label="Value"
        />
      ) : (
        <select value={cell.mode} onChange={(event) => set({ mode: event.target.value as Cell["mode"] })} data-testid={testId} aria-label="Value">
          {modes.map(([mode, label]) => (
            <option key={mode} value={mode}>
              {label}
            </option>
          ))}
        </select>
      )}
      {cell.mode === "metered" ? (
        <div className="cell-details">
          <input value={cell.limit} onChange={(event) => set({ limit: event.target.value })} placeholder="limit" inputMode="numeric" className="narrow" data-testid={`${testId}-limit`} aria-label="Limit" />
          <span className="muted">per</span>
          <PeriodSelect value={cell.period} onChange={(period) => set({ period })} testId={`${testId}-period`} />
          <label className="inline small">
            <input type="checkbox" checked={cell.uniqueResources} onChange={(event) => set({ uniqueResources: event.target.checked })} data-testid={`${testId}-unique`} />
            unique resources
          </label>
          <select value={cell.overage} onChange={(event) => set({ overage: event.target.value as Cell["overage"] })} data-testid={`${testId}-overage`} aria-label="Past the limit">
            <option value="">cap at the limit</option>
            <option value="overflow">overflow (report overage)</option>
          </select>
          {cell.overage === "overflow" ? (
            <input value={cell.stripeMeterEvent} onChange={(event) => set({ stripeMeterEvent: event.target.value })} placeholder="Stripe meter event" data-testid={`${testId}-stripe-meter-event`} />
          ) : null}
        </div>
      ) : null}
      {cell.mode === "credits" ? (
        <div className="cell-details">
          <input value={cell.amount} onChange={(event) => set({ amount: event.target.value })} placeholder="amount" inputMode="numeric" className="narrow" data-testid={`${testId}-amount`} aria-label="Amount" />
          <span className="muted">per</span>
          <PeriodSelect value={cell.period} onChange={(period) => set({ period })} testId={`${testId}-period`} />
          <input value={cell.carryOver} onChange={(event) => set({ carryOver: event.target.value })} placeholder="carry-over (all)" className="narrow" data-testid={`${testId}-carry-over`} aria-label="Carry over" />
        </div>
      ) : null}
    </div>
  );
}

function PlanEditor({ slug, definition, document, readOnly, save, errorPrefixes }: EditorProps<PlanDefinition>) {
  const [newSlug, setNewSlug] = useState("");
  const [name, setName] = useState(definition?.name ?? "");
  const [description, setDescription] = useState(definition?.description ?? "");
  const [autoAssign, setAutoAssign] = useState<string[]>(definition?.autoAssign ?? []);
  const [stripeProducts, setStripeProducts] = useState((definition?.stripeProductIds ?? []).join(", "));
  const features = Object.entries(document.features).map(([feature, featureDefinition]) => ({ feature, properties: Object.entries(propertiesOf(featureDefinition)) }));
  const [cells, setCells] = useState<Record<string, Cell>>(() =>
    Object.fromEntries(
      features.flatMap(({ feature, properties }) => properties.map(([property, def]) => [`${feature}.${property}`, cellOf(def, definition?.features?.[feature]?.[property])])),
    ),
  );
  const [busy, setBusy] = useState(false);
  const errors = useFormErrors();
  const fieldPaths = ["slug", "name", "description", "autoAssign", "stripeProductIds", "features", ...features.flatMap(({ feature, properties }) => [`features.${feature}`, ...properties.map(([property]) => `features.${feature}.${property}`)])];

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const targetSlug = slug ?? newSlug.trim();
    const check = collector();
    if (slug === null) check.check("slug", slugProblem(targetSlug));
    const matrix: Record<string, Record<string, unknown>> = {};
    for (const { feature, properties } of features) {
      for (const [property, def] of properties) {
        const value = valueOf(def, cells[`${feature}.${property}`] ?? EMPTY, `features.${feature}.${property}`, check.check);
        if (value !== undefined) (matrix[feature] ??= {})[property] = value;
      }
    }
    if (!check.ok) return errors.invalid(check.errors);
    errors.clear();
    setBusy(true);
    try {
      await save(targetSlug, {
        ...(name.trim() ? { name: name.trim() } : {}),
        ...(description.trim() ? { description: description.trim() } : {}),
        autoAssign,
        stripeProductIds: parseList(stripeProducts),
        features: matrix,
      });
    } catch (error) {
      errors.failed(error, fieldPaths, errorPrefixes(targetSlug));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} className="form" noValidate>
      <FormErrorsScope errors={errors}>
        <fieldset disabled={readOnly}>
          <div className="form-row">
            <Field label="Slug" path="slug">
              <SlugInput slug={slug} newSlug={newSlug} onNewSlug={setNewSlug} testId="plan-slug" placeholder="premium" />
            </Field>
            <Field label="Name" path="name">
              <input value={name} onChange={(event) => setName(event.target.value)} data-testid="plan-name" placeholder="Premium" />
            </Field>
          </div>
          <Field label="Description" path="description" wide>
            <input value={description} onChange={(event) => setDescription(event.target.value)} data-testid="plan-description" />
          </Field>
          <div className="form-row">
            <Field group label="Given automatically to" path="autoAssign" hint="Plans nobody is given automatically are granted by workflows or purchases.">
              <CheckboxList
                options={AUTO_ASSIGN_CATEGORIES.map((category) => ({ value: category, label: category, testId: `plan-auto-assign-${category}` }))}
                selected={autoAssign}
                onChange={setAutoAssign}
              />
            </Field>
            <Field label="Stripe products" path="stripeProductIds" hint="Comma-separated product ids: a subscription to one of them grants this plan.">
              <input value={stripeProducts} onChange={(event) => setStripeProducts(event.target.value)} placeholder="prod_…" data-testid="plan-stripe-products" />
            </Field>
          </div>

          <h3>Feature matrix</h3>
          <FieldError path="features" />
          {features.length === 0 ? (
            <p className="muted">
              No features yet: <a href="#/features/new">add a feature</a> first.
            </p>
          ) : (
            <table className="data-table matrix">
              <thead>
                <tr>
                  <th>Feature</th>
                  <th>Property</th>
                  <th>Type</th>
                  <th>Fallback</th>
                  <th>This plan</th>
                </tr>
              </thead>
              <tbody>
                {features.flatMap(({ feature, properties }) =>
                  properties.map(([property, def], index) => {
                    const key = `${feature}.${property}`;
                    return (
                      <tr key={key}>
                        <td>{index === 0 ? <strong>{feature}</strong> : null}</td>
                        <td>
                          <code>{property}</code>
                        </td>
                        <td className="muted">{def.type}</td>
                        <td className="muted">{def.type === "credits" ? "—" : String(def.fallback ?? (def.type === "enabled" ? "off" : ""))}</td>
                        <td>
                          <CellEditor property={def} cell={cells[key] ?? EMPTY} onChange={(cell) => setCells((current) => ({ ...current, [key]: cell }))} testId={`plan-matrix-${feature}-${property}`} />
                          <FieldError path={`features.${feature}.${property}`} />
                        </td>
                      </tr>
                    );
                  }),
                )}
              </tbody>
            </table>
          )}
        </fieldset>
        <SaveBar readOnly={readOnly} busy={busy} label={slug === null ? "Create plan" : "Save plan"} />
      </FormErrorsScope>
    </form>
  );
}

function describeValue(value: unknown): string {
  if (typeof value === "object" && value !== null) {
    if ("metered" in value) {
      const metered = (value as { metered: { limit: number; period?: string } }).metered;
      return `${metered.limit}/${metered.period ?? "month"}`;
    }
    if ("credits" in value) {
      const credits = (value as { credits: { amount: number; period?: string } }).credits;
      return `${credits.amount} credits/${credits.period ?? "month"}`;
    }
  }
  return String(value);
}

export default function PlansPage() {
  const route = useRoute();
  return (
    <CollectionPage<PlanDefinition>
      title="Plans"
      subtitle="Bundles of feature values; an identity holds the plans it is given automatically, by workflows or by purchases."
      collection="plans"
      base={["plans"]}
      selected={route.rest[0]}
      testPrefix="plan"
      Editor={PlanEditor}
      columns={[
        { header: "Name", render: (row) => row.definition.name ?? "" },
        { header: "Automatic for", render: (row) => (row.definition.autoAssign ?? []).join(", ") || <span className="muted">—</span> },
        {
          header: "Sets",
          render: (row) => (
            <span className="tags">
              {Object.entries(row.definition.features ?? {}).flatMap(([feature, values]) =>
                Object.entries(values).map(([property, value]) => (
                  <span key={`${feature}.${property}`} className="tag">
                    {feature}.{property} = {describeValue(value)}
                  </span>
                )),
              )}
            </span>
          ),
        },
      ]}
    />
  );
}
