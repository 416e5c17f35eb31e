/**
 * Draft document → immutable snapshot. Runs when a version is created, never on the decision path.
 */
import { parseCrawlerPrice } from "../engine/payPerCrawl";
import { propertiesOf, type ConfigDocument, type CreditsValue, type EnabledValue, type PlanPropertyValue } from "../../schema/config";
import {
  SNAPSHOT_SCHEMA_VERSION,
  type ConfigSnapshot,
  type CreditsSetting,
  type EnabledSetting,
  type SnapshotFeature,
  type SnapshotOffer,
  type SnapshotOfferGroup,
  type SnapshotPlanValue,
  type SnapshotProperty,
  type SnapshotWorkflow,
} from "../engine/snapshot";
import { sha256Hex } from "../lib/crypto";
import { WORKFLOW_COMPILER_GENERATION } from "./workflowModule";

export interface CompileContext {
  versionId: string;
  organizationId: string;
  /**
   * Turns workflow TypeScript into JavaScript; a thrown error fails the version. Its output is stamped as this build's
   * compiler generation (snapshot `workflowCompiler`), so loading the version does not check it again.
   */
  compileWorkflow?: (slug: string, source: string) => string;
}

export function toEnabledSetting(value: EnabledValue): EnabledSetting {
  if (value === true || value === "on") return { kind: "on" };
  if (value === false || value === "off") return { kind: "off" };
  const { limit, period, uniqueResources, overage, stripeMeterEvent } = value.metered;
  // A capped setting is stored as it always was (no `overage`), so its snapshot reads the same in every build.
  if (overage !== "overflow") return { kind: "metered", limit, period, uniqueResources };
  return { kind: "metered", limit, period, uniqueResources, overage, ...(stripeMeterEvent !== undefined ? { stripeMeterEvent } : {}) };
}

export function toCreditsSetting(value: CreditsValue): CreditsSetting {
  const { amount, period, carryOver } = value.credits;
  return carryOver === undefined ? { kind: "credits", amount, period } : { kind: "credits", amount, period, carryOver };
}

const bySlug = <T>(record: Record<string, T>) => Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** The document must already be validated and carry feature ids (see ensureFeatureIds). */
export async function compileSnapshot(doc: ConfigDocument, context: CompileContext): Promise<ConfigSnapshot> {
  const features: SnapshotFeature[] = bySlug(doc.features).map(([slug, feature]) => {
    if (!feature.id) throw new Error(`feature ${slug} has no id`);
    const properties = bySlug(propertiesOf(feature))
      .map(([propertySlug, def]): SnapshotProperty => ({ slug: propertySlug, ...def }) as SnapshotProperty)
      .sort((a, b) => (a.slug === "enabled" ? -1 : b.slug === "enabled" ? 1 : 0));
    return { id: feature.id, slug, name: feature.name ?? slug, properties };
  });
  const featureBySlug = new Map(features.map((feature) => [feature.slug, feature]));

  const plans = bySlug(doc.plans).map(([slug, plan]) => {
    const values: Record<string, Record<string, SnapshotPlanValue>> = {};
    for (const [featureSlug, propertyValues] of Object.entries(plan.features)) {
      const feature = featureBySlug.get(featureSlug)!;
      const definitions = propertiesOf(doc.features[featureSlug]!);
      const compiled: Record<string, SnapshotPlanValue> = {};
      for (const [propertySlug, value] of Object.entries(propertyValues)) {
        const type = definitions[propertySlug]?.type;
        compiled[propertySlug] =
          type === "enabled"
            ? toEnabledSetting(value as EnabledValue)
            : type === "credits"
              ? toCreditsSetting(value as CreditsValue)
              : (value as Exclude<PlanPropertyValue, object>);
      }
      values[feature.id] = compiled;
    }
    return {
      slug,
      name: plan.name ?? slug,
      autoAssign: [...new Set(plan.autoAssign)],
      stripeProductIds: [...new Set(plan.stripeProductIds)],
      values,
      ...(plan.payPerCrawl && Object.keys(plan.payPerCrawl).length > 0
        ? { payPerCrawl: Object.fromEntries(bySlug(plan.payPerCrawl).map(([surfaceSlug, price]) => [surfaceSlug, price === "forbidden" ? null : parseCrawlerPrice(price)])) }
        : {}),
    };
  });

  const surfaces: ConfigSnapshot["surfaces"] = {};
  for (const [slug, surface] of bySlug(doc.surfaces)) {
    surfaces[slug] = {
      slug,
      name: surface.name ?? slug,
      consumes: [...new Set(surface.consumes)].map((reference) => {
        const [featureSlug = "", property = ""] = reference.split(".");
        return { featureId: featureBySlug.get(featureSlug)!.id, featureSlug, property };
      }),
      components: bySlug(surface.components).map(([componentSlug, component]) => ({
        slug: componentSlug,
        name: component.name ?? componentSlug,
        ...(component.cssSelector ? { cssSelector: component.cssSelector } : {}),
        ...(component.offerGroups?.length ? { offerGroups: [...new Set(component.offerGroups)] } : {}),
      })),
      ...(surface.offerGroups.length ? { offerGroups: [...new Set(surface.offerGroups)] } : {}),
    };
  }

  const offers: SnapshotOffer[] = [];
  for (const [slug, offer] of bySlug(doc.offers)) {
    const variants = bySlug(offer.variants ?? {})
      .map(([variantSlug, { testGroups, ...variant }]) => ({ slug: variantSlug, from: testGroups.from, to: testGroups.to, ...variant }))
      .sort((a, b) => a.from - b.from);
    const charged = { price: offer.price ?? null, redemption: offer.redemption, variants: variants.map(({ slug: variantSlug, price, stripePriceId }) => ({ variantSlug, price, stripePriceId })) };
    offers.push({
      slug,
      name: offer.name ?? slug,
      presentation: offer.presentation,
      ...(offer.price ? { price: offer.price } : {}),
      redemption: offer.redemption,
      targeting: offer.targeting,
      variants,
      fingerprint: await sha256Hex(JSON.stringify(charged)),
    });
  }
  const offerGroups: Record<string, SnapshotOfferGroup> = {};
  for (const [slug, group] of bySlug(doc.offerGroups)) offerGroups[slug] = { slug, name: group.name ?? slug, slots: group.slots };

  const authMethods = bySlug(doc.authMethods).map(([slug, method]) => {
    const { type: _type, name, ...rest } = method;
    return { slug, name: name ?? slug, ...rest };
  });

  const workflows: SnapshotWorkflow[] = [];
  for (const [slug, workflow] of bySlug(doc.workflows)) {
    const { source, name, ...rest } = workflow;
    const code = context.compileWorkflow ? context.compileWorkflow(slug, source) : source;
    workflows.push({ slug, name: name ?? slug, ...rest, code, codeHash: await sha256Hex(code) });
  }

  return {
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    versionId: context.versionId,
    organizationId: context.organizationId,
    timeZone: doc.settings.timeZone,
    ...(doc.settings.payPerCrawl ? { payPerCrawl: { stripeMeterEvent: doc.settings.payPerCrawl.stripeMeterEvent } } : {}),
    features,
    plans,
    surfaces,
    authMethods,
    workflows,
    ...(context.compileWorkflow ? { workflowCompiler: WORKFLOW_COMPILER_GENERATION } : {}),
    triggers: Object.fromEntries(bySlug(doc.triggers).map(([name, trigger]) => [name, { ...trigger }])),
    offers,
    offerGroups,
  };
}
