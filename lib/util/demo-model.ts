// The demo model shipped with the package (models/stories260K.gguf: llama2.c's 260K-parameter
// TinyStories model, MIT; see models/README.md): the CLI's default model, and the tests' real model.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the bundled demo model. */
export const DEMO_MODEL_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'stories260K.gguf');
