import { bodyLimit } from "hono/body-limit";
import { MAX_DECISION_BODY_BYTES } from "../decision/request";
import { ApiError } from "../errors";

/** Decision bodies are small; anything over 64 KiB is refused before it is parsed. */
export const decisionBodyLimit = bodyLimit({
  maxSize: MAX_DECISION_BODY_BYTES,
  onError: () => {
    throw new ApiError("payload_too_large", `Request body larger than ${MAX_DECISION_BODY_BYTES} bytes`);
  },
});
