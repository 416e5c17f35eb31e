import { useState, type FormEvent } from "react";
import { parse, stringify } from "yaml";
import { CollectionSection, SaveBar, useDraftDocument, type EditorProps } from "../components/CollectionPage";
import { CodeEditor } from "../components/editor/CodeEditor";
import { Field, FieldError, FormErrorsScope, useFormErrors } from "../components/FieldError";
import { SlugInput } from "../components/formInputs";
import { Page } from "../components/Page";
import { ProblemBox } from "../components/ProblemBox";
import { useRoute } from "../components/router";
import { collector, slugProblem } from "../components/validation";
import { locate } from "../components/yamlPaths";

type Offer = Record<string, unknown> & { name?: string; presentation?: { title?: string } & Record<string, unknown> };

const NEW_OFFER_REST = `# Everything but the name and the title, as YAML (see the API reference, OfferDefinition).
presentation:
  description: Unlimited widgets
  callToAction: Upgrade
price:
  currency: usd
  amount: 999
  interval: month
redemption:
  method: checkout
  plan: premium
  stripePriceId: price_123
targeting:
  userTypes: [authenticated]
`;

/** The offer's name and title as fields, everything else (price, redemption, targeting, variants) as YAML. */
function OfferEditor({ slug, definition, readOnly, save, errorPrefixes }: EditorProps<Offer>) {
  const [newSlug, setNewSlug] = useState("");
  const [name, setName] = useState(definition?.name ?? "");
  const [title, setTitle] = useState(definition?.presentation?.title ?? "");
  const [rest, setRest] = useState(() => {
    if (!definition) return NEW_OFFER_REST;
    const { name: _name, presentation, ...others } = definition;
    const { title: _title, ...presentationRest } = presentation ?? {};
    return stringify({ ...(Object.keys(presentationRest).length ? { presentation: presentationRest } : {}), ...others });
  });
  const [busy, setBusy] = useState(false);
  const errors = useFormErrors();
  // The API's details about the YAML part, marked on its lines (paths arrive as `offers.<slug>.price` or `price`).
  const prefix = `offers.${slug ?? newSlug.trim()}.`;
  const markers = locate(
    rest,
    errors.rest.map((detail) => ({ ...detail, path: detail.path.startsWith(prefix) ? detail.path.slice(prefix.length) : detail.path })),
  ).map((problem) => ({ line: problem.line ?? 1, message: `${problem.path}: ${problem.message}` }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const targetSlug = slug ?? newSlug.trim();
    const check = collector();
    if (slug === null) check.check("slug", slugProblem(targetSlug));
    if (!title.trim()) check.check("presentation.title", "required: what the visitor sees");
    let others: Record<string, unknown> = {};
    try {
      const parsed: unknown = parse(rest) ?? {};
      if (typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("must be a mapping of fields");
      others = parsed as Record<string, unknown>;
    } catch (error) {
      check.check("rest", `Invalid YAML: ${(error as Error).message.split("\n")[0]}`);
    }
    if (!check.ok) return errors.invalid(check.errors);
    errors.clear();
    setBusy(true);
    try {
      const presentation = { ...((others.presentation as object) ?? {}), title: title.trim() };
      await save(targetSlug, { ...others, ...(name.trim() ? { name: name.trim() } : {}), presentation });
    } catch (error) {
      errors.failed(error, ["slug", "name", "presentation.title"], errorPrefixes(targetSlug));
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
              <SlugInput slug={slug} newSlug={newSlug} onNewSlug={setNewSlug} testId="offer-slug" />
            </Field>
            <Field label="Name" path="name">
              <input value={name} onChange={(event) => setName(event.target.value)} data-testid="offer-name" />
            </Field>
            <Field label="Title" path="presentation.title">
              <input value={title} onChange={(event) => setTitle(event.target.value)} data-testid="offer-title" placeholder="Go Premium" />
            </Field>
          </div>
        </fieldset>
        <div className="field wide">
          <span className="field-label">Price, redemption, targeting, variants (YAML)</span>
          <CodeEditor language="yaml" value={rest} onChange={setRest} height="320px" readOnly={readOnly} testId="offer-yaml" markers={markers} />
          <FieldError path="rest" />
        </div>
        <SaveBar readOnly={readOnly} busy={busy} label={slug === null ? "Create offer" : "Save offer"} />
      </FormErrorsScope>
    </form>
  );
}

type OfferGroup = { name?: string; slots?: { name?: string; offers: string[] }[] };

interface SlotRow {
  key: number;
  name: string;
  offers: string[];
}
let nextKey = 1;

function OfferGroupEditor({ slug, definition, document, readOnly, save, errorPrefixes }: EditorProps<OfferGroup>) {
  const [newSlug, setNewSlug] = useState("");
  const [name, setName] = useState(definition?.name ?? "");
  const [slots, setSlots] = useState<SlotRow[]>(() => (definition?.slots ?? [{ offers: [] }]).map((slot) => ({ key: nextKey++, name: slot.name ?? "", offers: slot.offers })));
  const [busy, setBusy] = useState(false);
  const errors = useFormErrors();
  const offers = Object.keys(document.offers);
  const fieldPaths = ["slug", "name", "slots", ...slots.map((_, index) => `slots[${index}]`)];

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const targetSlug = slug ?? newSlug.trim();
    const check = collector();
    if (slug === null) check.check("slug", slugProblem(targetSlug));
    if (slots.length === 0) check.check("slots", "add at least one slot");
    slots.forEach((slot, index) => slot.offers.length === 0 && check.check(`slots[${index}]`, "pick at least one offer"));
    if (!check.ok) return errors.invalid(check.errors);
    errors.clear();
    setBusy(true);
    try {
      await save(targetSlug, { ...(name.trim() ? { name: name.trim() } : {}), slots: slots.map((slot) => ({ ...(slot.name.trim() ? { name: slot.name.trim() } : {}), offers: slot.offers })) });
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
              <SlugInput slug={slug} newSlug={newSlug} onNewSlug={setNewSlug} testId="offer-group-slug" />
            </Field>
            <Field label="Name" path="name">
              <input value={name} onChange={(event) => setName(event.target.value)} data-testid="offer-group-name" />
            </Field>
          </div>
          <h3>Slots</h3>
          <p className="muted small">In display order; each shows the first eligible offer of its list that an earlier slot did not show.</p>
          <FieldError path="slots" />
          {slots.map((slot, index) => (
            <div key={slot.key} className="slot">
              <input value={slot.name} onChange={(event) => setSlots((current) => current.map((other) => (other.key === slot.key ? { ...other, name: event.target.value } : other)))} placeholder={`Slot ${index + 1}`} data-testid={`slot-name-${index}`} aria-label="Slot name" />
              <span className="checks">
                {offers.length === 0 ? <span className="muted">No offers yet.</span> : null}
                {offers.map((offer) => (
                  <label key={offer} className="inline">
                    <input
                      type="checkbox"
                      checked={slot.offers.includes(offer)}
                      onChange={(event) =>
                        setSlots((current) =>
                          current.map((other) => (other.key === slot.key ? { ...other, offers: event.target.checked ? [...other.offers, offer] : other.offers.filter((candidate) => candidate !== offer) } : other)),
                        )
                      }
                      data-testid={`slot-${index}-offer-${offer}`}
                    />
                    {offer}
                  </label>
                ))}
              </span>
              {readOnly ? null : (
                <button type="button" className="link danger" onClick={() => setSlots((current) => current.filter((other) => other.key !== slot.key))}>
                  Remove
                </button>
              )}
              <FieldError path={`slots[${index}]`} />
            </div>
          ))}
          {readOnly ? null : (
            <button type="button" onClick={() => setSlots((current) => [...current, { key: nextKey++, name: "", offers: [] }])} data-testid="slot-add">
              Add slot
            </button>
          )}
        </fieldset>
        <SaveBar readOnly={readOnly} busy={busy} label={slug === null ? "Create offer group" : "Save offer group"} />
      </FormErrorsScope>
    </form>
  );
}

/** `#/offers` lists offers and offer groups; `#/offers/offer/<slug>` and `#/offers/group/<slug>` edit one. */
export default function OffersPage() {
  const route = useRoute();
  const draft = useDraftDocument();
  const [kind, selected] = route.rest;
  const document = draft.data;
  return (
    <Page title="Offers" subtitle="Purchase options shown on surfaces, and the groups (slots) that place them.">
      {draft.error ? <ProblemBox problem={draft.error} /> : null}
      {!document ? (
        draft.loading ? <p className="loading">Loading the draft…</p> : null
      ) : (
        <>
          {kind !== "group" ? (
            <CollectionSection<Offer>
              collection="offers"
              title="Offers"
              base={["offers", "offer"]}
              selected={kind === "offer" ? selected : undefined}
              testPrefix="offer"
              Editor={OfferEditor}
              document={document}
              reload={draft.reload}
              loading={draft.loading}
              columns={[
                { header: "Title", render: (row) => row.definition.presentation?.title ?? "" },
                { header: "Redemption", render: (row) => String((row.definition.redemption as { method?: string } | undefined)?.method ?? "") },
              ]}
            />
          ) : null}
          {kind !== "offer" ? (
            <CollectionSection<OfferGroup>
              collection="offerGroups"
              title="Offer groups"
              base={["offers", "group"]}
              selected={kind === "group" ? selected : undefined}
              testPrefix="offer-group"
              Editor={OfferGroupEditor}
              document={document}
              reload={draft.reload}
              loading={draft.loading}
              columns={[
                { header: "Name", render: (row) => row.definition.name ?? "" },
                { header: "Slots", render: (row) => (row.definition.slots ?? []).map((slot) => slot.offers.join(" / ")).join(" · ") },
              ]}
            />
          ) : null}
        </>
      )}
    </Page>
  );
}
