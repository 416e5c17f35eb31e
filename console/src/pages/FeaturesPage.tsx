import { useState, type FormEvent } from "react";
import { segment, useApi } from "../api";
import { CollectionPage, SaveBar, type EditorProps } from "../components/CollectionPage";
import { PROPERTY_TYPES, propertiesOf, type FeatureDefinition, type PropertyDefinition, type PropertyType } from "../components/config";
import { Field, FieldError, FormErrorsScope, useFormErrors } from "../components/FieldError";
import { useRoute } from "../components/router";
import { collector, numberProblem, parseList, slugProblem } from "../components/validation";

/** One property as the form edits it: everything typed as text until it is sent. */
interface PropertyRow {
  key: number;
  name: string;
  type: PropertyType;
  fallback: string;
  conflict: "higher" | "lower";
  onMeterFailure: "open" | "closed";
  values: string;
  baseCost: string;
  /** The definition's fields this form has no input for, as JSON (credit costs per action, packs, …). */
  extra: string;
}

let nextKey = 1;

function rowOf(name: string, definition: PropertyDefinition): PropertyRow {
  const { type, fallback, conflict, onMeterFailure, values, costs, ...rest } = definition;
  const extra: Record<string, unknown> = { ...rest };
  let baseCost = "1";
  if (type === "credits" && costs && typeof costs === "object") {
    const { base, ...otherCosts } = costs as { base?: number };
    baseCost = base === undefined ? "1" : String(base);
    if (Object.keys(otherCosts).length > 0) extra.costs = otherCosts;
  }
  return {
    key: nextKey++,
    name,
    type,
    fallback: fallback === undefined ? defaultFallback(type) : String(fallback),
    conflict: conflict ?? "higher",
    onMeterFailure: onMeterFailure ?? "closed",
    values: values?.join(", ") ?? "",
    baseCost,
    extra: Object.keys(extra).length > 0 ? JSON.stringify(extra, null, 2) : "",
  };
}

function defaultFallback(type: PropertyType): string {
  return { enabled: "off", boolean: "false", number: "0", string: "", credits: "" }[type];
}

/** Renames a feature: its id, and so its counters, stay; plans, surfaces and workflows follow (one API call). */
function RenameFeature({ slug, onRenamed, unsaved, discard }: { slug: string; onRenamed(slug: string, notice: string): void; unsaved: boolean; discard(): void }) {
  const api = useApi();
  const [open, setOpen] = useState(false);
  const [next, setNext] = useState(slug);
  const [problem, setProblem] = useState<string | null>(null);
  // A rename reloads the feature from the draft: edits not saved yet would be lost, and the notice would lie about them.
  if (unsaved)
    return (
      <>
        <button type="button" className="link" disabled data-testid="feature-rename" title="Save or discard your changes first">
          Rename
        </button>{" "}
        <span className="muted small">
          (save or{" "}
          <button type="button" className="link" onClick={discard} data-testid="feature-discard">
            discard
          </button>{" "}
          your changes first)
        </span>
      </>
    );
  if (!open)
    return (
      <button type="button" className="link" onClick={() => setOpen(true)} data-testid="feature-rename">
        Rename
      </button>
    );
  const submit = async () => {
    const invalid = slugProblem(next.trim());
    if (invalid) return setProblem(invalid);
    try {
      await api.post(`/api/v1/admin/features/${segment(slug)}/rename`, { slug: next.trim() });
      onRenamed(next.trim(), `Renamed to ${next.trim()}.`);
    } catch (error) {
      setProblem((error as Error).message);
    }
  };
  return (
    <span className="rename">
      <input
        value={next}
        onChange={(event) => setNext(event.target.value)}
        onKeyDown={(event) => {
          // Enter renames; it must not submit the feature's form around it.
          if (event.key === "Enter") {
            event.preventDefault();
            void submit();
          }
        }}
        data-testid="feature-rename-slug"
        aria-label="New slug"
      />
      <button type="button" onClick={() => void submit()} data-testid="feature-rename-save">
        Rename
      </button>
      <button type="button" className="link" onClick={() => setOpen(false)}>
        Cancel
      </button>
      {problem ? <span className="field-error" data-testid="field-error-rename">{problem}</span> : null}
    </span>
  );
}

function FeatureEditor({ slug, definition, readOnly, save, errorPrefixes, changed }: EditorProps<FeatureDefinition>) {
  const [newSlug, setNewSlug] = useState("");
  const [name, setName] = useState(definition?.name ?? "");
  const [description, setDescription] = useState(definition?.description ?? "");
  const [rows, setRows] = useState<PropertyRow[]>(() => Object.entries(propertiesOf(definition ?? {})).map(([property, def]) => rowOf(property, def)));
  const [busy, setBusy] = useState(false);
  const errors = useFormErrors();
  const [loaded] = useState(() => JSON.stringify({ name, description, rows }));
  const unsaved = JSON.stringify({ name, description, rows }) !== loaded;
  const discard = () => {
    const original = JSON.parse(loaded) as { name: string; description: string; rows: PropertyRow[] };
    setName(original.name);
    setDescription(original.description);
    setRows(original.rows);
    errors.clear();
  };

  const update = (key: number, change: Partial<PropertyRow>) => setRows((current) => current.map((row) => (row.key === key ? { ...row, ...change } : row)));
  const fieldPaths = ["slug", "name", "description", "properties", ...rows.flatMap((row) => ["", ".type", ".fallback", ".conflict", ".onMeterFailure", ".values", ".costs", ".costs.base"].map((suffix) => `properties.${row.name}${suffix}`))];

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const targetSlug = slug ?? newSlug.trim();
    const check = collector();
    if (slug === null) check.check("slug", slugProblem(targetSlug));
    check.check("name", name.length > 200 && "at most 200 characters");
    const properties: Record<string, PropertyDefinition> = {};
    for (const row of rows) {
      const at = `properties.${row.name}`;
      check.check(`${at}`, slugProblem(row.name));
      if (row.name !== "enabled" && row.type === "enabled") check.check(`${at}.type`, "only the property named enabled may have type enabled");
      if (properties[row.name]) check.check(`${at}`, "two properties have this name");
      let extra: Record<string, unknown> = {};
      if (row.extra.trim()) {
        try {
          const parsed: unknown = JSON.parse(row.extra);
          if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("must be a JSON object");
          extra = parsed as Record<string, unknown>;
        } catch (error) {
          check.check(`${at}`, `more settings: ${(error as Error).message}`);
        }
      }
      const definition: PropertyDefinition = { ...extra, type: row.type, conflict: row.conflict };
      switch (row.type) {
        case "enabled":
          definition.fallback = row.fallback === "on" ? "on" : "off";
          definition.onMeterFailure = row.onMeterFailure;
          break;
        case "boolean":
          definition.fallback = row.fallback === "true";
          break;
        case "number":
          check.check(`${at}.fallback`, numberProblem(row.fallback, { required: true }));
          definition.fallback = Number(row.fallback);
          break;
        case "string": {
          const values = parseList(row.values);
          if (values.length > 0) {
            if (new Set(values).size !== values.length) check.check(`${at}.values`, "values must be unique");
            if (!values.includes(row.fallback)) check.check(`${at}.fallback`, `must be one of the allowed values (${values.join(", ")})`);
            definition.values = values;
          }
          definition.fallback = row.fallback;
          break;
        }
        case "credits":
          check.check(`${at}.costs.base`, numberProblem(row.baseCost, { required: true, min: 0 }));
          definition.costs = { ...((extra.costs as object) ?? {}), base: Number(row.baseCost) };
          definition.onMeterFailure = row.onMeterFailure;
          break;
      }
      properties[row.name] = definition;
    }
    if (!check.ok) return errors.invalid(check.errors);
    errors.clear();
    setBusy(true);
    try {
      const next: FeatureDefinition = {
        ...(definition?.id ? { id: definition.id } : {}),
        ...(name.trim() ? { name: name.trim() } : {}),
        ...(description.trim() ? { description: description.trim() } : {}),
        properties,
      };
      await save(targetSlug, next);
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
            <Field
              label="Slug"
              path="slug"
              group={slug !== null}
              hint={slug === null ? "a-z, 0-9, - and _; used by the API and workflows" : readOnly ? undefined : <>Renaming keeps the feature's counters. <RenameFeature slug={slug} onRenamed={changed} unsaved={unsaved} discard={discard} /></>}
            >
              {slug === null ? (
                <input value={newSlug} onChange={(event) => setNewSlug(event.target.value)} data-testid="feature-slug" placeholder="widget" autoFocus />
              ) : (
                <input value={slug} readOnly data-testid="feature-slug" />
              )}
            </Field>
            <Field label="Name" path="name">
              <input value={name} onChange={(event) => setName(event.target.value)} data-testid="feature-name" placeholder="Widget" />
            </Field>
          </div>
          <Field label="Description" path="description" wide>
            <input value={description} onChange={(event) => setDescription(event.target.value)} data-testid="feature-description" />
          </Field>

          <h3>Properties</h3>
          <p className="muted small">
            Every feature has <code>enabled</code> (on, off or metered per plan). The fallback applies when no plan held sets the property; the
            conflict rule picks between plans that disagree.
          </p>
          <FieldError path="properties" />
          <table className="data-table properties-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Type</th>
                <th>Fallback</th>
                <th>Conflict</th>
                <th>Settings</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {rows.map((row, index) => {
                const at = `properties.${row.name}`;
                const isEnabled = row.type === "enabled";
                return (
                  <tr key={row.key} data-testid={`property-row-${index}`}>
                    <td>
                      <input
                        value={row.name}
                        readOnly={isEnabled}
                        onChange={(event) => update(row.key, { name: event.target.value })}
                        data-testid={`property-name-${index}`}
                        placeholder="limit"
                        aria-label="Property name"
                      />
                      <FieldError path={at} />
                    </td>
                    <td>
                      {isEnabled ? (
                        <span className="tag">enabled</span>
                      ) : (
                        <select
                          value={row.type}
                          onChange={(event) => {
                            const type = event.target.value as PropertyType;
                            update(row.key, { type, fallback: defaultFallback(type) });
                          }}
                          data-testid={`property-type-${index}`}
                          aria-label="Property type"
                        >
                          {PROPERTY_TYPES.map((type) => (
                            <option key={type}>{type}</option>
                          ))}
                        </select>
                      )}
                      <FieldError path={`${at}.type`} />
                    </td>
                    <td>
                      {row.type === "enabled" ? (
                        <select value={row.fallback} onChange={(event) => update(row.key, { fallback: event.target.value })} data-testid={`property-fallback-${index}`} aria-label="Fallback">
                          <option>off</option>
                          <option>on</option>
                        </select>
                      ) : row.type === "boolean" ? (
                        <select value={row.fallback} onChange={(event) => update(row.key, { fallback: event.target.value })} data-testid={`property-fallback-${index}`} aria-label="Fallback">
                          <option>false</option>
                          <option>true</option>
                        </select>
                      ) : row.type === "credits" ? (
                        <span className="muted small">balance</span>
                      ) : (
                        <input
                          value={row.fallback}
                          inputMode={row.type === "number" ? "decimal" : undefined}
                          onChange={(event) => update(row.key, { fallback: event.target.value })}
                          data-testid={`property-fallback-${index}`}
                          aria-label="Fallback"
                        />
                      )}
                      <FieldError path={`${at}.fallback`} />
                    </td>
                    <td>
                      <select value={row.conflict} onChange={(event) => update(row.key, { conflict: event.target.value as "higher" | "lower" })} data-testid={`property-conflict-${index}`} aria-label="Conflict rule">
                        <option value="higher">higher wins</option>
                        <option value="lower">lower wins</option>
                      </select>
                      <FieldError path={`${at}.conflict`} />
                    </td>
                    <td>
                      <div className="property-settings">
                        {row.type === "enabled" || row.type === "credits" ? (
                          <label className="inline">
                            meter down:
                            <select value={row.onMeterFailure} onChange={(event) => update(row.key, { onMeterFailure: event.target.value as "open" | "closed" })} data-testid={`property-meter-failure-${index}`}>
                              <option value="closed">deny (closed)</option>
                              <option value="open">grant (open)</option>
                            </select>
                          </label>
                        ) : null}
                        {row.type === "string" ? (
                          <label className="inline">
                            values (low → high):
                            <input value={row.values} onChange={(event) => update(row.key, { values: event.target.value })} placeholder="basic, pro" data-testid={`property-values-${index}`} />
                          </label>
                        ) : null}
                        {row.type === "credits" ? (
                          <label className="inline">
                            base cost:
                            <input value={row.baseCost} onChange={(event) => update(row.key, { baseCost: event.target.value })} className="narrow" data-testid={`property-base-cost-${index}`} />
                          </label>
                        ) : null}
                        {row.type === "credits" || row.extra ? (
                          <details>
                            <summary>More settings (JSON)</summary>
                            <textarea
                              value={row.extra}
                              onChange={(event) => update(row.key, { extra: event.target.value })}
                              rows={4}
                              placeholder='{"costs": {"actions": {"export": 5}}, "packs": [{"stripeProductId": "prod_…", "amount": 100}]}'
                              data-testid={`property-extra-${index}`}
                            />
                          </details>
                        ) : null}
                        <FieldError path={`${at}.values`} />
                        <FieldError path={`${at}.onMeterFailure`} />
                        <FieldError path={`${at}.costs.base`} />
                        <FieldError path={`${at}.costs`} />
                      </div>
                    </td>
                    <td>
                      {isEnabled || readOnly ? null : (
                        <button type="button" className="link danger" onClick={() => setRows((current) => current.filter((other) => other.key !== row.key))} data-testid={`property-remove-${index}`}>
                          Remove
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {readOnly ? null : (
            <button
              type="button"
              onClick={() => setRows((current) => [...current, { ...rowOf("", { type: "boolean", fallback: false }), name: "" }])}
              data-testid="property-add"
            >
              Add property
            </button>
          )}
        </fieldset>
        <SaveBar readOnly={readOnly} busy={busy} label={slug === null ? "Create feature" : "Save feature"} />
      </FormErrorsScope>
    </form>
  );
}

export default function FeaturesPage() {
  const route = useRoute();
  return (
    <CollectionPage<FeatureDefinition>
      title="Features"
      subtitle="What your product gates or meters, and the properties each plan sets."
      collection="features"
      base={["features"]}
      selected={route.rest[0]}
      testPrefix="feature"
      Editor={FeatureEditor}
      columns={[
        { header: "Name", render: (row) => row.definition.name ?? "" },
        {
          header: "Properties",
          render: (row) => (
            <span className="tags">
              {Object.entries(propertiesOf(row.definition)).map(([name, property]) => (
                <span key={name} className="tag">
                  {name}: {property.type}
                </span>
              ))}
            </span>
          ),
        },
      ]}
    />
  );
}
