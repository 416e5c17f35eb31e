import { useState, type FormEvent } from "react";
import { CollectionPage, SaveBar, type EditorProps } from "../components/CollectionPage";
import { JWT_ALGORITHMS } from "../components/config";
import { Field, FormErrorsScope, useFormErrors } from "../components/FieldError";
import { CheckboxList, SlugInput } from "../components/formInputs";
import { useRoute } from "../components/router";
import { collector, numberProblem, slugProblem } from "../components/validation";

interface AuthMethod {
  name?: string;
  type?: "jwt";
  publicKey?: string;
  jwksUrl?: string;
  algorithms?: string[];
  identifierClaim?: string;
  issuer?: string;
  audience?: string;
  clockSkewSeconds?: number;
  requireExpiry?: boolean;
}

function AuthMethodEditor({ slug, definition, readOnly, save, errorPrefixes }: EditorProps<AuthMethod>) {
  const [newSlug, setNewSlug] = useState("");
  const [name, setName] = useState(definition?.name ?? "");
  const [source, setSource] = useState<"publicKey" | "jwksUrl">(definition?.jwksUrl ? "jwksUrl" : "publicKey");
  const [publicKey, setPublicKey] = useState(definition?.publicKey ?? "");
  const [jwksUrl, setJwksUrl] = useState(definition?.jwksUrl ?? "");
  const [algorithms, setAlgorithms] = useState<string[]>(definition?.algorithms ?? ["RS256"]);
  const [identifierClaim, setIdentifierClaim] = useState(definition?.identifierClaim ?? "sub");
  const [issuer, setIssuer] = useState(definition?.issuer ?? "");
  const [audience, setAudience] = useState(definition?.audience ?? "");
  const [clockSkew, setClockSkew] = useState(String(definition?.clockSkewSeconds ?? 30));
  const [requireExpiry, setRequireExpiry] = useState(definition?.requireExpiry ?? false);
  const [busy, setBusy] = useState(false);
  const errors = useFormErrors();
  const fieldPaths = ["slug", "name", "publicKey", "jwksUrl", "algorithms", "identifierClaim", "issuer", "audience", "clockSkewSeconds", "requireExpiry"];

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const targetSlug = slug ?? newSlug.trim();
    const check = collector();
    if (slug === null) check.check("slug", slugProblem(targetSlug));
    if (source === "publicKey") {
      if (!publicKey.trim()) check.check("publicKey", "required: paste the identity provider's public key (PEM)");
      else if (!/-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----/.test(publicKey)) check.check("publicKey", "must be a PEM-encoded SPKI public key (-----BEGIN PUBLIC KEY-----)");
    } else if (!/^https:\/\/\S+$/.test(jwksUrl.trim())) check.check("jwksUrl", "must be an https URL");
    if (algorithms.length === 0) check.check("algorithms", "pick at least one algorithm");
    if (!identifierClaim.trim()) check.check("identifierClaim", "required");
    check.check("clockSkewSeconds", numberProblem(clockSkew, { required: true, integer: true, min: 0, max: 300 }));
    if (!check.ok) return errors.invalid(check.errors);
    errors.clear();
    setBusy(true);
    try {
      await save(targetSlug, {
        ...(name.trim() ? { name: name.trim() } : {}),
        type: "jwt",
        ...(source === "publicKey" ? { publicKey: publicKey.trim() } : { jwksUrl: jwksUrl.trim() }),
        algorithms,
        identifierClaim: identifierClaim.trim(),
        ...(issuer.trim() ? { issuer: issuer.trim() } : {}),
        ...(audience.trim() ? { audience: audience.trim() } : {}),
        clockSkewSeconds: Number(clockSkew),
        ...(requireExpiry ? { requireExpiry: true } : {}),
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
              <SlugInput slug={slug} newSlug={newSlug} onNewSlug={setNewSlug} testId="auth-slug" placeholder="my-jwt" />
            </Field>
            <Field label="Name" path="name">
              <input value={name} onChange={(event) => setName(event.target.value)} data-testid="auth-name" />
            </Field>
          </div>
          <Field group label="Verify tokens with" wide>
            <span className="checks">
              <label className="inline">
                <input type="radio" name="source" checked={source === "publicKey"} onChange={() => setSource("publicKey")} data-testid="auth-source-public-key" />
                a public key (PEM)
              </label>
              <label className="inline">
                <input type="radio" name="source" checked={source === "jwksUrl"} onChange={() => setSource("jwksUrl")} data-testid="auth-source-jwks" />
                a JWKS URL
              </label>
            </span>
          </Field>
          {source === "publicKey" ? (
            <Field label="Public key" path="publicKey" wide>
              <textarea value={publicKey} onChange={(event) => setPublicKey(event.target.value)} rows={7} className="mono" placeholder={"-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----"} data-testid="auth-public-key" />
            </Field>
          ) : (
            <Field label="JWKS URL" path="jwksUrl" wide>
              <input value={jwksUrl} onChange={(event) => setJwksUrl(event.target.value)} placeholder="https://example.com/.well-known/jwks.json" data-testid="auth-jwks-url" />
            </Field>
          )}
          <Field group label="Algorithms" path="algorithms" wide>
            <CheckboxList
              options={JWT_ALGORITHMS.map((algorithm) => ({ value: algorithm, label: algorithm, testId: `auth-algorithm-${algorithm}` }))}
              selected={algorithms}
              onChange={setAlgorithms}
            />
          </Field>
          <div className="form-row">
            <Field label="Identifier claim" path="identifierClaim" hint="Its value becomes the user's identifier (e.g. sub or email).">
              <input value={identifierClaim} onChange={(event) => setIdentifierClaim(event.target.value)} data-testid="auth-identifier-claim" />
            </Field>
            <Field label="Issuer (iss)" path="issuer" hint="Optional; checked when set.">
              <input value={issuer} onChange={(event) => setIssuer(event.target.value)} data-testid="auth-issuer" />
            </Field>
            <Field label="Audience (aud)" path="audience" hint="Optional; checked when set.">
              <input value={audience} onChange={(event) => setAudience(event.target.value)} data-testid="auth-audience" />
            </Field>
          </div>
          <div className="form-row">
            <Field label="Clock skew (seconds)" path="clockSkewSeconds">
              <input value={clockSkew} onChange={(event) => setClockSkew(event.target.value)} inputMode="numeric" data-testid="auth-clock-skew" />
            </Field>
            <Field group label="Expiry" path="requireExpiry">
              <label className="inline">
                <input type="checkbox" checked={requireExpiry} onChange={(event) => setRequireExpiry(event.target.checked)} data-testid="auth-require-expiry" />
                refuse tokens without exp
              </label>
            </Field>
          </div>
        </fieldset>
        <SaveBar readOnly={readOnly} busy={busy} label={slug === null ? "Create authentication method" : "Save authentication method"} />
      </FormErrorsScope>
    </form>
  );
}

export default function AuthMethodsPage() {
  const route = useRoute();
  return (
    <CollectionPage<AuthMethod>
      title="Authentication methods"
      subtitle="How signed-in users are recognized: decisions with a userJwt are verified against these."
      collection="authMethods"
      base={["auth-methods"]}
      selected={route.rest[0]}
      testPrefix="auth"
      Editor={AuthMethodEditor}
      columns={[
        { header: "Name", render: (row) => row.definition.name ?? "" },
        { header: "Keys", render: (row) => (row.definition.jwksUrl ? row.definition.jwksUrl : "public key") },
        { header: "Algorithms", render: (row) => (row.definition.algorithms ?? ["RS256"]).join(", ") },
        { header: "Identifier claim", render: (row) => row.definition.identifierClaim ?? "sub" },
      ]}
    />
  );
}
