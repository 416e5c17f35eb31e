import { useState, type FormEvent } from "react";
import { CollectionPage, SaveBar, type EditorProps } from "../components/CollectionPage";
import { consumableProperties, type SurfaceDefinition } from "../components/config";
import { Field, FieldError, FormErrorsScope, useFormErrors } from "../components/FieldError";
import { CheckboxList, SlugInput } from "../components/formInputs";
import { useRoute } from "../components/router";
import { collector, parseList, slugProblem } from "../components/validation";

interface ComponentRow {
  key: number;
  slug: string;
  name: string;
  cssSelector: string;
  offerGroups: string;
}

let nextKey = 1;

function SurfaceEditor({ slug, definition, document, readOnly, save, errorPrefixes }: EditorProps<SurfaceDefinition>) {
  const [newSlug, setNewSlug] = useState("");
  const [name, setName] = useState(definition?.name ?? "");
  const [description, setDescription] = useState(definition?.description ?? "");
  const [consumes, setConsumes] = useState<string[]>(definition?.consumes ?? []);
  const [offerGroups, setOfferGroups] = useState<string[]>(definition?.offerGroups ?? []);
  const [components, setComponents] = useState<ComponentRow[]>(() =>
    Object.entries(definition?.components ?? {}).map(([component, def]) => ({
      key: nextKey++,
      slug: component,
      name: def.name ?? "",
      cssSelector: def.cssSelector ?? "",
      offerGroups: (def.offerGroups ?? []).join(", "),
    })),
  );
  const [busy, setBusy] = useState(false);
  const errors = useFormErrors();
  const consumable = consumableProperties(document);
  const groups = Object.keys(document.offerGroups);
  const fieldPaths = ["slug", "name", "description", "consumes", "offerGroups", "components", ...components.map((row) => `components.${row.slug}`)];
  const update = (key: number, change: Partial<ComponentRow>) => setComponents((current) => current.map((row) => (row.key === key ? { ...row, ...change } : row)));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const targetSlug = slug ?? newSlug.trim();
    const check = collector();
    if (slug === null) check.check("slug", slugProblem(targetSlug));
    const componentRecord: NonNullable<SurfaceDefinition["components"]> = {};
    for (const row of components) {
      check.check(`components.${row.slug}`, slugProblem(row.slug) && `slug ${slugProblem(row.slug)}`);
      if (componentRecord[row.slug]) check.check(`components.${row.slug}`, "two components have this slug");
      const rowGroups = parseList(row.offerGroups);
      componentRecord[row.slug] = {
        ...(row.name.trim() ? { name: row.name.trim() } : {}),
        ...(row.cssSelector.trim() ? { cssSelector: row.cssSelector.trim() } : {}),
        ...(rowGroups.length ? { offerGroups: rowGroups } : {}),
      };
    }
    if (!check.ok) return errors.invalid(check.errors);
    errors.clear();
    setBusy(true);
    try {
      await save(targetSlug, {
        ...(name.trim() ? { name: name.trim() } : {}),
        ...(description.trim() ? { description: description.trim() } : {}),
        consumes,
        components: componentRecord,
        offerGroups,
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
            <Field label="Slug" path="slug" hint="The surfaceSlug of decisions">
              <SlugInput slug={slug} newSlug={newSlug} onNewSlug={setNewSlug} testId="surface-slug" placeholder="hello-world" />
            </Field>
            <Field label="Name" path="name">
              <input value={name} onChange={(event) => setName(event.target.value)} data-testid="surface-name" />
            </Field>
          </div>
          <Field label="Description" path="description" wide>
            <input value={description} onChange={(event) => setDescription(event.target.value)} data-testid="surface-description" />
          </Field>
          <Field group label="Consumes" path="consumes" hint="Each decision on this surface uses one unit of these metered or credits properties." wide>
            {consumable.length === 0 ? (
              <span className="muted">No feature has a meterable property yet.</span>
            ) : (
              <CheckboxList
                options={consumable.map(({ feature, property, type }) => ({
                  value: `${feature}.${property}`,
                  label: (
                    <>
                      <code>{`${feature}.${property}`}</code> <span className="muted small">{type}</span>
                    </>
                  ),
                  testId: `surface-consumes-${feature}-${property}`,
                }))}
                selected={consumes}
                onChange={setConsumes}
              />
            )}
          </Field>
          <Field group label="Offer groups" path="offerGroups" wide>
            {groups.length === 0 ? (
              <span className="muted">No offer groups.</span>
            ) : (
              <CheckboxList
                options={groups.map((group) => ({ value: group, label: group, testId: `surface-offer-group-${group}` }))}
                selected={offerGroups}
                onChange={setOfferGroups}
              />
            )}
          </Field>

          <h3>Components</h3>
          <FieldError path="components" />
          {components.length === 0 ? <p className="muted small">No components: the surface decides as a whole.</p> : null}
          {components.length > 0 ? (
            <table className="data-table">
              <thead>
                <tr>
                  <th>Slug</th>
                  <th>Name</th>
                  <th>CSS selector</th>
                  <th>Offer groups</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {components.map((row, index) => (
                  <tr key={row.key}>
                    <td>
                      <input value={row.slug} onChange={(event) => update(row.key, { slug: event.target.value })} data-testid={`component-slug-${index}`} aria-label="Component slug" />
                      <FieldError path={`components.${row.slug}`} />
                    </td>
                    <td>
                      <input value={row.name} onChange={(event) => update(row.key, { name: event.target.value })} data-testid={`component-name-${index}`} aria-label="Component name" />
                    </td>
                    <td>
                      <input value={row.cssSelector} onChange={(event) => update(row.key, { cssSelector: event.target.value })} placeholder="#paywall" data-testid={`component-selector-${index}`} aria-label="CSS selector" />
                    </td>
                    <td>
                      <input value={row.offerGroups} onChange={(event) => update(row.key, { offerGroups: event.target.value })} placeholder={groups.join(", ")} data-testid={`component-offer-groups-${index}`} aria-label="Offer groups" />
                    </td>
                    <td>
                      {readOnly ? null : (
                        <button type="button" className="link danger" onClick={() => setComponents((current) => current.filter((other) => other.key !== row.key))} data-testid={`component-remove-${index}`}>
                          Remove
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          {readOnly ? null : (
            <button type="button" onClick={() => setComponents((current) => [...current, { key: nextKey++, slug: "", name: "", cssSelector: "", offerGroups: "" }])} data-testid="component-add">
              Add component
            </button>
          )}
        </fieldset>
        <SaveBar readOnly={readOnly} busy={busy} label={slug === null ? "Create surface" : "Save surface"} />
      </FormErrorsScope>
    </form>
  );
}

export default function SurfacesPage() {
  const route = useRoute();
  return (
    <CollectionPage<SurfaceDefinition>
      title="Surfaces"
      subtitle="The places of your product that ask for a decision (a page, a paywall, an API route)."
      collection="surfaces"
      base={["surfaces"]}
      selected={route.rest[0]}
      testPrefix="surface"
      Editor={SurfaceEditor}
      columns={[
        { header: "Name", render: (row) => row.definition.name ?? "" },
        { header: "Consumes", render: (row) => (row.definition.consumes ?? []).join(", ") || <span className="muted">—</span> },
        { header: "Components", render: (row) => Object.keys(row.definition.components ?? {}).join(", ") || <span className="muted">—</span> },
      ]}
    />
  );
}
