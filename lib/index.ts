// layerskip: self-speculative decoding (LayerSkip) for local LLMs on a patched llama.cpp.
export { loadModel, Model, type LoadModelOptions, type ModelInfo } from './model.js';
export { ModelFileError, checkModelInfo, validateModelFile, type ModelFileFault } from './model-validation.js';
export { validateModelFileAsync } from './validation-thread.js';
export {
  Context,
  Sequence,
  defaultThreads,
  type ContextOptions,
  type DecodeLayersOptions,
  type DecodeLayersResult,
  type GenerateOptions,
} from './context.js';
export {
  Generation,
  type GenerationChunk,
  type GenerationResult,
  type GenerationTimings,
  type SpeculativeStats,
  type SourceStats,
  type StopReason,
} from './generation.js';
export type { SelfSpeculativeOptions } from './decoding/self-speculative.js';
export type { LookupOptions } from './decoding/draft-sources.js';
export type { SamplingOptions } from './sampling.js';
export { BusyError, ContextFullError, DisposedError, UnsupportedArchitectureError } from './errors.js';
export { LAYER_RANGE_ARCHITECTURES, architectureSupport, layerRangeRefusal, type ArchitectureSupport } from './architectures.js';
export { quantizeModel, QUANTIZATION_TYPES, type QuantizationType } from './quantize.js';
export { systemInfo } from './system.js';
export { formatLayerAnalysis, renderLayerAnalysisSvg } from './reports/layer-analysis-report.js';
export { sweepToCsv, sweepToSvg } from './reports/sweep-report.js';
export { renderLineCharts, type ChartLayout, type ChartPanel, type ChartSeries } from './reports/svg-chart.js';
export {
  analyzeLayers,
  predictedSpeedup,
  DEFAULT_CALIBRATION_TEXTS,
  LAYER_ANALYSIS_RCCA_GRID,
  type LayerAnalysisOptions,
  type LayerAnalysisResult,
  type LayerAnalysisEntry,
  type LayerRecommendation,
} from './layer-analysis.js';
export { sweep, type SweepCell, type SweepOptions, type SweepResult } from './sweep.js';
export { DraftHead, modelIdentity, type DraftHeadParts, type DraftHeadStats } from './draft-head/draft-head.js';
export { fitDraftHead, chooseVocabulary, type FitDraftHeadOptions, type FitDraftHeadProgress } from './draft-head/fit.js';
export { DEMO_MODEL_PATH } from './demo-model.js';
export { ChatSession, type ChatSessionOptions, type ChatTarget, type ChatTurnResult } from './chat/session.js';
export { CHAT_ROLES, ChatTemplateError, PLAIN_CHAT_TEMPLATE, type ChatMessage, type ChatRole, type ChatTemplateOptions } from './chat/template.js';
export { applyBuiltinChatTemplate } from './chat/builtin.js';
export { createModel, type CreateModelResult, type CreateModelSpec } from './training/create-model.js';
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
} from './training/train.js';
export { startRpcServer, type RpcServer, type RpcServerOptions } from './rpc/server.js';
