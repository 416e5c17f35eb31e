// The <script> build (dist/elements.global.js): registers the custom elements as soon as it loads. Nothing else:
// it stays small enough to add to any page.
import { defineElements } from "./elements.js";

defineElements();
