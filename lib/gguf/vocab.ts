/**
 * A synthetic SentencePiece-style ("llama") vocabulary for random models.
 *
 * Layout: <unk>, <s>, </s> (types 2, 3, 3), the 256 byte tokens <0x00>..<0xFF> (type 6), then
 * normal tokens (type 1): "▁", single characters without and with the "▁" prefix, common English
 * words with the "▁" prefix (lower-case and capitalised, plus every prefix of each so that SPM
 * merges can reach the whole word), then synthetic lower-case n-grams (n = 2, 3, ...), without
 * and with "▁". All pieces are unique. Scores: specials and bytes 0, normal token i gets -i, so
 * earlier pieces win merges.
 */

export const SPM_SPACE = '\u2581';

export const LlamaTokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export const SPM_UNK_ID = 0;
export const SPM_BOS_ID = 1;
export const SPM_EOS_ID = 2;
/** Number of special + byte tokens before the first normal token. */
export const SPM_FIXED_TOKENS = 259;
export const SPM_MIN_VOCAB = SPM_FIXED_TOKENS + 1;

export interface SpmVocab {
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
}

const COMMON_WORDS = (
  'the of and to a in is was that it he for on with as his they at be this from I have or by one had not but what ' +
  'all were when we there can an your which their said if do will each about how up out them then she many some so ' +
  'these would other into has more her two like him see time could no make than first been its who now people my ' +
  'made over did down only way find use may water long little very after words called just where most know get ' +
  'through back much before go good new write our used me man too any day same right look think also around another ' +
  'came come work three word must because does part even place well such here take why things help put years different ' +
  'away again off went old number great tell men say small every found still between name should home big give air ' +
  'line set own under read last never us left end along while might next sound below saw something thought both few ' +
  'those always looked show large often together asked house world going want school important until form food keep ' +
  'children feet land side without boy once animals life enough took sometimes four head above kind began almost live ' +
  'page got earth need far hand high year mother light parts country father let night following picture being study ' +
  'second eyes soon times story boys since white days ever paper hard near sentence better best across during today ' +
  'others however sure means knew try told young miles sun ways thing whole hear example heard several change answer ' +
  'room sea against top turned learn point city play toward five using himself usually upon girl named loved happy ' +
  'friend friends park tree dog cat ball sky red blue green big little day once upon time lily tom mom dad'
).split(' ');

const SINGLE_CHARS = [...'abcdefghijklmnopqrstuvwxyz', ...'ABCDEFGHIJKLMNOPQRSTUVWXYZ', ...'0123456789', ...'.,!?\'":;-()'];

function hex2(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, '0');
}

/** Lower-case n-grams in lexicographic order, n = 2, 3, ..., each without and with "▁". */
function* syntheticPieces(): Generator<string> {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let n = 2; ; n++) {
    const total = letters.length ** n;
    for (const withSpace of [false, true]) {
      for (let i = 0; i < total; i++) {
        let s = '';
        let x = i;
        for (let k = 0; k < n; k++) {
          s = letters[x % 26] + s;
          x = Math.floor(x / 26);
        }
        yield withSpace ? SPM_SPACE + s : s;
      }
    }
  }
}

function* normalPieces(): Generator<string> {
  yield SPM_SPACE;
  for (const c of SINGLE_CHARS) yield c;
  for (const c of SINGLE_CHARS) yield SPM_SPACE + c;
  for (const w of COMMON_WORDS) {
    for (const word of [w, w[0].toUpperCase() + w.slice(1)]) {
      for (let k = 2; k <= word.length; k++) yield SPM_SPACE + word.slice(0, k);
    }
  }
  yield* syntheticPieces();
}

/** Builds the vocabulary with exactly `nVocab` tokens. */
export function buildSpmVocab(nVocab: number): SpmVocab {
  if (!Number.isSafeInteger(nVocab) || nVocab < SPM_MIN_VOCAB) {
    throw new Error(`nVocab must be an integer >= ${SPM_MIN_VOCAB} (3 specials + 256 bytes + 1), got ${nVocab}`);
  }
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types = new Int32Array(nVocab);
  const scores = new Float32Array(nVocab);
  types[0] = LlamaTokenType.UNKNOWN;
  types[1] = LlamaTokenType.CONTROL;
  types[2] = LlamaTokenType.CONTROL;
  for (let b = 0; b < 256; b++) {
    types[tokens.length] = LlamaTokenType.BYTE;
    tokens.push(`<0x${hex2(b)}>`);
  }
  const seen = new Set(tokens);
  for (const piece of normalPieces()) {
    if (tokens.length >= nVocab) break;
    if (seen.has(piece)) continue;
    seen.add(piece);
    const id = tokens.length;
    tokens.push(piece);
    types[id] = LlamaTokenType.NORMAL;
    scores[id] = -id;
  }
  return { tokens, scores, types };
}
