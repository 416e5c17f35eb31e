import { bodyLimit } from "hono/body-limit";
import { MAX_DECISION_BODY_BYTES } from "../decision/request";
import { ApiError } from "../errors";

/** Admin bodies (a whole configuration document at most) are refused past 1 MiB before they are parsed. */
export const MAX_ADMIN_BODY_BYTES = 1024 * 1024;
export const adminBodyLimit = bodyLimit({
  maxSize: MAX_ADMIN_BODY_BYTES,
  onError: () => {
    throw new ApiError("payload_too_large", `Request body larger than ${MAX_ADMIN_BODY_BYTES} bytes`);
  },
});

/** Decision bodies are small; anything over 64 KiB is refused before it is parsed. */
export const decisionBodyLimit = bodyLimit({
  maxSize: MAX_DECISION_BODY_BYTES,
  onError: () => {
    throw new ApiError("payload_too_large", `Request body larger than ${MAX_DECISION_BODY_BYTES} bytes`);
  },
});
