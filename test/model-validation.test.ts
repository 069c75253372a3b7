// The model-file checks against the faults that used to abort the process inside llama.cpp (issue
// 12's list): each case changes one field of the real demo model's header and must be rejected for
// exactly that reason, while the unchanged model and every generated test model pass. `npm run fuzz
// -- --no-validate` shows the same faults killing a worker process without these checks.
import { describe, expect, it } from 'vitest';
import { GgmlType } from '../lib/gguf/index.js';
import { readGgufInfo, type GgufFileInfo } from '../lib/gguf/reader.js';
import type { GgufMetadataValue } from '../lib/gguf/types.js';
import { ModelFileError, checkModelInfo, loadModel, validateModelFile, type ModelFileFault } from '../lib/index.js';
import { F16_SHAPES, SHAPES, STORIES, randomModel } from './helpers.js';

const base = readGgufInfo(STORIES);

/** A copy of the demo model's header with `edit` applied (tensor infos copied, so edits stay local). */
function edited(edit: (info: GgufFileInfo) => void): GgufFileInfo {
  const info: GgufFileInfo = { ...base, metadata: new Map(base.metadata), tensors: base.tensors.map((t) => ({ ...t, shape: [...t.shape] })) };
  edit(info);
  return info;
}
const set = (key: string, value: GgufMetadataValue) => (info: GgufFileInfo) => void info.metadata.set(key, value);
const tensor = (info: GgufFileInfo, name: string) => info.tensors.find((t) => t.name === name)!;
const tokens = () => [...(base.metadata.get('tokenizer.ggml.tokens')!.value as string[])];

const cases: [string, (info: GgufFileInfo) => void, ModelFileFault, RegExp][] = [
  [
    'duplicate token texts',
    (i) => {
      const t = tokens();
      t[300] = t[301];
      i.metadata.set('tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: t });
    },
    'vocabulary',
    /tokens 300 and 301 have the same text/,
  ],
  [
    'a matrix of an integer type',
    (i) => {
      tensor(i, 'blk.1.attn_q.weight').type = GgmlType.I32;
    },
    'tensor-type',
    /blk\.1\.attn_q\.weight is I32, which has no matrix multiplication/,
  ],
  [
    'a norm weight that is not F32',
    (i) => {
      tensor(i, 'blk.0.ffn_norm.weight').type = GgmlType.F16;
    },
    'tensor-type',
    /ffn_norm\.weight is F16; one-dimensional tensors must be F32/,
  ],
  [
    'general.alignment below 32',
    (i) => {
      i.alignment = 16;
    },
    'structure',
    /general\.alignment 16/,
  ],
  ['block_count 0', set('llama.block_count', { type: 'u32', value: 0 }), 'hyperparameter', /llama\.block_count = 0 is outside \[1, 512\]/],
  ['block_count above 512', set('llama.block_count', { type: 'u32', value: 600 }), 'hyperparameter', /block_count = 600/],
  ['a NaN norm epsilon', set('llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: Number.NaN }), 'hyperparameter', /layer_norm_rms_epsilon = NaN/],
  ['a negative norm epsilon', set('llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: -1e-5 }), 'hyperparameter', /layer_norm_rms_epsilon/],
  [
    'expert counts on a dense model',
    (i) => {
      set('llama.expert_count', { type: 'u32', value: 4 })(i);
      set('llama.expert_used_count', { type: 'u32', value: 2 })(i);
    },
    'hyperparameter',
    /without expert router tensors/,
  ],
  [
    'expert_used_count above expert_count',
    (i) => {
      set('llama.expert_count', { type: 'u32', value: 2 })(i);
      set('llama.expert_used_count', { type: 'u32', value: 3 })(i);
    },
    'hyperparameter',
    /expert_used_count 3/,
  ],
  ['tokenizer "bert"', set('tokenizer.ggml.model', { type: 'string', value: 'bert' }), 'vocabulary', /tokenizer "bert" is not supported/],
  ['an unknown rope scaling type', set('llama.rope.scaling.type', { type: 'string', value: 'spiral' }), 'hyperparameter', /rope\.scaling\.type "spiral"/],
  [
    'a missing byte-fallback token',
    (i) => {
      const t = tokens();
      t[3 + 0x41] = 'A!';
      i.metadata.set('tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: t });
    },
    'vocabulary',
    /byte-fallback token <0x41> is missing/,
  ],
  [
    'token types shorter than the vocabulary',
    set('tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: new Int32Array(10) }),
    'vocabulary',
    /token_type has 10 values for 512 tokens/,
  ],
  ['a special token outside the vocabulary', set('tokenizer.ggml.eos_token_id', { type: 'u32', value: 512 }), 'vocabulary', /eos_token_id = 512 is outside/],
  [
    'a head count that does not divide the width',
    set('llama.attention.head_count', { type: 'u32', value: 7 }),
    'hyperparameter',
    /not a multiple of head_count_kv|not a multiple of attention\.head_count/,
  ],
  [
    'a weight of the wrong shape',
    (i) => {
      tensor(i, 'blk.2.attn_k.weight').shape = [64, 64];
    },
    'tensor-shape',
    /blk\.2\.attn_k\.weight has shape \[64, 64\], expected \[64, 32\]/,
  ],
  [
    'a missing weight',
    (i) => void i.tensors.pop(),
    'tensor-missing',
    new RegExp(`${base.tensors[base.tensors.length - 1].name.replace(/\./g, '\\.')} is missing`),
  ],
  [
    'a tensor named twice',
    (i) => {
      i.tensors[5] = { ...i.tensors[5], name: i.tensors[4].name };
    },
    'tensor-missing',
    /appears twice/,
  ],
  [
    'tensor data out of table order',
    (i) => {
      [i.tensors[3].offset, i.tensors[4].offset] = [i.tensors[4].offset, i.tensors[3].offset];
    },
    'structure',
    /data offset/,
  ],
  ['no architecture', (i) => void i.metadata.delete('general.architecture'), 'architecture', /general\.architecture is missing/],
];

describe('model file checks', () => {
  it('pass the demo model and every generated test model', () => {
    expect(() => checkModelInfo(base)).not.toThrow();
    for (const spec of [...Object.values(SHAPES), ...Object.values(F16_SHAPES)]) expect(() => validateModelFile(randomModel(spec))).not.toThrow();
  });

  it.each(cases)('reject %s, naming the fault', (_name, edit, fault, message) => {
    const info = edited(edit);
    let error: unknown;
    try {
      checkModelInfo(info);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ModelFileError);
    expect(error).toMatchObject({ code: 'ERR_MODEL_FILE', fault, reason: fault });
    expect((error as Error).message).toMatch(message);
  });

  it('reject through loadModel before the native loader runs', async () => {
    await expect(loadModel(STORIES.replace(/stories260K\.gguf$/, 'README.md'))).rejects.toMatchObject({ code: 'ERR_MODEL_FILE', fault: 'structure' });
  });

  it('reject from the worker thread of the built package as the same ModelFileError', async () => {
    const built = await import('../dist/index.js'); // its validation worker runs the compiled module
    const notGguf = STORIES.replace(/stories260K\.gguf$/, 'README.md');
    let error: unknown;
    await built.validateModelFileAsync(notGguf).catch((e: unknown) => (error = e));
    expect(error).toBeInstanceOf(built.ModelFileError);
    expect(error).toMatchObject({ code: 'ERR_MODEL_FILE', fault: 'structure', path: notGguf });
    expect((error as Error).message).toBe(
      (() => {
        try {
          built.validateModelFile(notGguf);
        } catch (e) {
          return (e as Error).message;
        }
      })(),
    );
    await expect(built.validateModelFileAsync(STORIES)).resolves.toBeUndefined();
    await expect(built.loadModel(notGguf)).rejects.toBeInstanceOf(built.ModelFileError);
  });
});
