// layerskip: self-speculative decoding (LayerSkip) for local LLMs on a patched llama.cpp.
export { loadModel, Model, type LoadModelOptions, type ModelInfo } from './runtime/model.js';
export { ModelFileError, checkModelInfo, validateModelFile, type ModelFileFault } from './model-file/validation.js';
export { validateModelFileAsync } from './model-file/validation-thread.js';
export {
  Context,
  Sequence,
  defaultThreads,
  type ContextOptions,
  type DecodeLayersOptions,
  type DecodeLayersResult,
  type GenerateOptions,
} from './runtime/context.js';
export {
  Generation,
  type GenerationChunk,
  type GenerationResult,
  type GenerationTimings,
  type SpeculativeStats,
  type SourceStats,
  type StopReason,
} from './runtime/generation.js';
export type { SelfSpeculativeOptions } from './decoding/self-speculative.js';
export type { LookupOptions } from './decoding/draft-sources.js';
export type { SamplingOptions } from './decoding/sampling.js';
export { AbortedError, BusyError, ContextFullError, DisposedError, RpcError, UnsupportedArchitectureError } from './native/errors.js';
export { LAYER_RANGE_ARCHITECTURES, architectureSupport, layerRangeRefusal, type ArchitectureSupport } from './model-file/architectures.js';
export { quantizeModel, QUANTIZATION_TYPES, type QuantizationType } from './native/quantize.js';
export { systemInfo } from './native/system.js';
export { formatLayerAnalysis, renderLayerAnalysisSvg } from './tools/reports/layer-analysis-report.js';
export { sweepToCsv, sweepToSvg } from './tools/reports/sweep-report.js';
export { renderLineCharts, type ChartLayout, type ChartPanel, type ChartSeries } from './analysis/svg-chart.js';
export {
  analyzeLayers,
  predictedSpeedup,
  DEFAULT_CALIBRATION_TEXTS,
  LAYER_ANALYSIS_RCCA_GRID,
  type LayerAnalysisOptions,
  type LayerAnalysisResult,
  type LayerAnalysisEntry,
  type LayerRecommendation,
} from './tools/layer-analysis.js';
export { sweep, type SweepCell, type SweepOptions, type SweepResult } from './tools/sweep.js';
export { DraftHead, modelIdentity, type DraftHeadParts, type DraftHeadStats } from './draft-head/draft-head.js';
export { fitDraftHead, chooseVocabulary, type FitDraftHeadOptions, type FitDraftHeadProgress } from './tools/draft-head-fit.js';
export { DEMO_MODEL_PATH } from './util/demo-model.js';
export { jsonSchemaToGrammar } from './decoding/grammar.js';
export { ChatSession, type ChatSessionOptions, type ChatTarget, type ChatTurnResult } from './runtime/chat-session.js';
export { CHAT_ROLES, ChatTemplateError, PLAIN_CHAT_TEMPLATE, type ChatMessage, type ChatRole, type ChatTemplateOptions } from './runtime/chat-template.js';
export { applyBuiltinChatTemplate } from './runtime/chat-builtin.js';
export { createModel, type CreateModelResult, type CreateModelSpec } from './tools/training/create-model.js';
export {
  trainModel,
  evaluateExits,
  type TrainModelOptions,
  type TrainModelResult,
  type TrainProgress,
  type ExitEvaluation,
  type TrainingData,
  type LayerDropoutOptions,
  type EarlyExitLossOptions,
  type Curriculum,
  type DropoutScale,
  type ExitWeighting,
} from './tools/training/train.js';
export { startRpcServer, type RpcServer, type RpcServerOptions } from './native/rpc-server.js';
